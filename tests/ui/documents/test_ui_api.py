"""``lumina.ui.api`` for other contexts: frozen DTOs, each call as an actor, the same rules."""

from __future__ import annotations

import dataclasses

import pytest

from lumina.ui import api
from tests.security.rbac_support import actor_for
from tests.ui.documents.conftest import make_document, text_state, tiptap_state

pytestmark = pytest.mark.django_db


def test_document_get_and_text_for_the_owner_and_a_404_for_others(people):
    document = make_document(people.developer, "Plan", content=tiptap_state())

    found = api.document_get(actor=actor_for(people.developer), document_id=document.id)

    assert (found.title, found.owner_id) == ("Plan", people.developer.pk)
    assert "documents.share" in found.permissions
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.title = "changed"  # type: ignore[misc]
    assert api.document_text(actor=actor_for(people.developer), document_id=document.id).startswith(
        "Plan\n\nShip it bold"
    )
    assert api.document_export(
        actor=actor_for(people.developer), document_id=document.id, output="markdown"
    ).startswith("# Plan")
    for stranger in (people.admin, people.viewer, people.other_developer):
        with pytest.raises(api.DocumentNotFoundError):
            api.document_get(actor=actor_for(stranger), document_id=document.id)
        with pytest.raises(api.DocumentNotFoundError):
            api.document_text(actor=actor_for(stranger), document_id=document.id)


def test_documents_for_user_lists_own_and_shared_only(people):
    make_document(people.developer, "mine", content=text_state("x"))
    make_document(people.other_developer, "theirs")

    listed = api.documents_for_user(actor=actor_for(people.developer))

    assert [row.title for row in listed] == ["mine"]
    assert api.documents_for_user(actor=actor_for(people.admin)) == []
