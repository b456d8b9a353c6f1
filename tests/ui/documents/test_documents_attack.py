"""The attack: everyone but the owner tries to read, change, share, restore and export
someone else's document, and is refused with a 404, as if it did not exist.

Roles do not open people's documents: no role, Viewer (``*.read``), Developer
(``documents.read``/``edit``), Admin (every document permission but
``documents.manage``) and staff without a role are all refused; the Owner role's
``documents.manage`` is the control that shows the routes work.
"""

from __future__ import annotations

import base64

import pytest

from lumina.ui.models import DocumentUpdate, DocumentVersion
from lumina.ui.services import document_state
from tests.ui.documents.conftest import DOCUMENTS, client_as, make_document, text_state

pytestmark = pytest.mark.django_db

ATTACKERS = ("nobody", "viewer", "developer", "admin", "staff")


# A whole state with the attacker's text: a keep or a restore would store it first.
PLANTED = base64.b64encode(text_state("planted")).decode()


def _attempts(document, version, victim) -> list[tuple[str, str, dict | None]]:
    url = f"{DOCUMENTS}/{document.id}"
    return [
        ("get", url, None),
        ("patch", url, {"title": "mine now"}),
        ("delete", url, None),
        ("get", f"{url}/export?format=text", None),
        ("get", f"{url}/export?format=json", None),
        ("get", f"{url}/shares", None),
        ("post", f"{url}/shares", {"principal": "attacker", "permission": "edit"}),
        ("delete", f"{url}/shares/users/{victim.pk}", None),
        ("get", f"{url}/versions", None),
        ("post", f"{url}/versions", {"name": "taken"}),
        ("post", f"{url}/versions/{version.id}/restore", None),
        ("post", f"{url}/versions", {"name": "taken", "state": PLANTED}),
        ("post", f"{url}/versions/{version.id}/restore", {"state": PLANTED}),
    ]


@pytest.mark.parametrize("role", ATTACKERS)
def test_each_role_is_refused_someone_elses_document(people, role):
    victim = people.other_developer
    document = make_document(victim, "private", content=text_state("secret plans"))
    version = DocumentVersion.objects.create(
        document=document, name="v1", upto_seq=1, state=document_state.state_load(document.id)
    )
    attacker = getattr(people, role)
    client = client_as(attacker)
    attempts = _attempts(document, version, victim)
    # The share would name the attacker themselves.
    attempts[6] = (
        attempts[6][0],
        attempts[6][1],
        {"principal": attacker.email, "permission": "edit"},
    )
    updates_before = DocumentUpdate.objects.count()

    for method, url, body in attempts:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (role, method, url, response.status_code)
        assert b"secret plans" not in response.content
        assert response.json()["error"]["code"] == "document_not_found"

    listed = client.get(DOCUMENTS).json()
    assert listed["count"] == 0
    document.refresh_from_db()
    assert (document.title, document.deleted_at) == ("private", None)
    assert DocumentUpdate.objects.count() == updates_before
    assert DocumentVersion.objects.filter(document=document).count() == 1


def test_the_owner_role_manages_everyones_documents(people):
    """The control: the same requests pass for a holder of documents.manage."""
    victim = people.other_developer
    document = make_document(victim, "private", content=text_state("secret plans"))
    version = DocumentVersion.objects.create(
        document=document, name="v1", upto_seq=1, state=document_state.state_load(document.id)
    )
    client = client_as(people.owner)
    url = f"{DOCUMENTS}/{document.id}"

    assert client.get(url).status_code == 200
    assert b"secret plans" in client.get(f"{url}/export?format=text").content
    assert client.patch(url, {"title": "managed"}, format="json").status_code == 200
    assert client.post(f"{url}/versions/{version.id}/restore").status_code == 200
    shared = client.post(
        f"{url}/shares", {"principal": people.viewer.email, "permission": "view"}, format="json"
    )
    assert shared.status_code == 200
    assert client.delete(url).status_code == 204


def test_a_viewer_share_cannot_change_share_restore_or_delete(people):
    """Readable but not theirs to change: 403, and nothing changes."""
    document = make_document(people.developer, "shared", content=text_state("hello"))
    version = DocumentVersion.objects.create(
        document=document, name="v1", upto_seq=1, state=document_state.state_load(document.id)
    )
    client_as(people.developer).post(
        f"{DOCUMENTS}/{document.id}/shares",
        {"principal": people.other_developer.email, "permission": "view"},
        format="json",
    )
    client = client_as(people.other_developer)
    url = f"{DOCUMENTS}/{document.id}"

    assert client.get(url).status_code == 200
    assert client.get(f"{url}/export?format=markdown").status_code == 200
    for method, target, body in [
        ("patch", url, {"title": "x"}),
        ("delete", url, None),
        ("get", f"{url}/shares", None),
        ("post", f"{url}/shares", {"principal": people.viewer.email, "permission": "view"}),
        ("post", f"{url}/versions", {"name": "v2"}),
        ("post", f"{url}/versions/{version.id}/restore", None),
        ("post", f"{url}/versions", {"name": "v2", "state": PLANTED}),
        ("post", f"{url}/versions/{version.id}/restore", {"state": PLANTED}),
    ]:
        response = getattr(client, method)(target, body, format="json")
        assert response.status_code == 403, (method, target, response.status_code)
    assert DocumentUpdate.objects.filter(document=document).count() == 1
