"""The admin console's document pages: people see what they may read, changes go through
the services (events, permissions), a version is restored as a new update."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from lumina.kernel.models import OutboxEvent
from lumina.ui.models import DocumentUpdate, DocumentVersion
from lumina.ui.services import document_state
from tests.ui.documents.conftest import client_as, edit_text, make_document, text_state
from tests.ui.documents.test_versions_exports import _text

pytestmark = pytest.mark.django_db


def _staff(people, role: str):
    user = getattr(people, role)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return user, client


def test_the_changelist_shows_staff_their_own_documents_not_everyones(people):
    developer, client = _staff(people, "developer")
    make_document(developer, "my notes")
    make_document(people.other_developer, "their diary")

    html = client.get(reverse("admin:ui_document_changelist")).content.decode()

    assert "my notes" in html
    assert "their diary" not in html


@pytest.mark.parametrize("role", ["admin", "viewer", "developer"])
def test_staff_with_a_role_cannot_open_someone_elses_document(people, role):
    _, client = _staff(people, role)
    document = make_document(people.other_developer, "their diary")

    for url in (
        reverse("admin:ui_document_change", args=[document.pk]),
        reverse("admin:ui_document_delete", args=[document.pk]),
    ):
        response = client.get(url)
        # Refused: a 403 without the page's permission, else "no such object".
        if response.status_code != 403:
            assert response.status_code == 302, (url, response.status_code)
            assert response["Location"].split("?")[0] == reverse("admin:index")
    assert "their diary" not in client.get(reverse("admin:ui_document_changelist")).content.decode()


def test_renaming_and_deleting_go_through_the_services(people):
    developer, client = _staff(people, "developer")
    document = make_document(developer, "old")

    saved = client.post(
        reverse("admin:ui_document_change", args=[document.pk]), {"title": "new", **_no_inline()}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    document.refresh_from_db()
    assert document.title == "new"
    assert OutboxEvent.objects.filter(name="ui.DocumentRenamed").exists()

    client.post(reverse("admin:ui_document_delete", args=[document.pk]), {"post": "yes"})
    document.refresh_from_db()
    assert document.deleted_at is not None
    assert OutboxEvent.objects.filter(name="ui.DocumentDeleted").exists()


def _no_inline() -> dict:
    prefix = "versions"
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_the_restore_action_appends_an_update(people):
    developer, client = _staff(people, "developer")
    document = make_document(developer, content=text_state("kept"))
    version = DocumentVersion.objects.create(
        document=document, name="v1", upto_seq=1, state=document_state.state_load(document.id)
    )
    edit_text(document, "changed")

    response = client.post(
        reverse("admin:ui_documentversion_changelist"),
        {"action": "restore", "_selected_action": [str(version.pk)]},
    )

    assert response.status_code == 302
    assert DocumentUpdate.objects.filter(document=document).count() == 3
    assert _text(document) == "kept"


def test_a_share_to_edit_renames_in_the_console_but_does_not_delete(people):
    owner = people.developer
    editor, client = _staff(people, "other_developer")
    document = make_document(owner, "shared")
    client_as(owner).post(
        f"/api/v1/documents/{document.id}/shares",
        {"principal": editor.email, "permission": "edit", "can_share": True},
        format="json",
    )

    renamed = client.post(
        reverse("admin:ui_document_change", args=[document.pk]),
        {"title": "by the editor", **_no_inline()},
    )
    refused = client.post(reverse("admin:ui_document_delete", args=[document.pk]), {"post": "yes"})

    assert renamed.status_code == 302
    assert refused.status_code == 403
    document.refresh_from_db()
    assert (document.title, document.deleted_at) == ("by the editor", None)
