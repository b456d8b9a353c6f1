"""Stock y-websocket clients editing one document through /ws/documents/{id}/."""

from __future__ import annotations

import random

import pytest

from tests.ui.sync.conftest import (
    make_document,
    make_token,
    make_user,
    share,
    stored_text,
    stored_updates,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_concurrent_edits_from_two_clients_converge_and_are_stored(server, yjs):
    owner = make_user("owner")
    editor = make_user("editor")
    document = make_document(owner)
    share(document, owner, editor, "edit")
    yjs.connect("a", server, document.id, token=make_token(owner))
    yjs.connect("b", server, document.id, token=make_token(editor))
    yjs.call("synced", name="a")
    yjs.call("synced", name="b")

    rng = random.Random(12)  # noqa: S311 (a seeded edit sequence)
    for step in range(40):
        for name in ("a", "b"):
            operation = rng.choice(("insert", "insert", "delete", "set"))
            if operation == "insert":
                yjs.call("insert", name=name, index=rng.randrange(60), text=f"{name}{step} ")
            elif operation == "delete":
                yjs.call("delete", name=name, index=rng.randrange(60), length=rng.randrange(1, 4))
            else:
                yjs.call("set", name=name, key=f"k{rng.randrange(5)}", value=f"{name}{step}")
    yjs.call("set", name="a", key="last-a", value=1)
    yjs.call("set", name="b", key="last-b", value=1)

    a = yjs.call("wait", name="a", mapKeys=["last-a", "last-b"])
    b = yjs.call("wait", name="b", mapKeys=["last-a", "last-b"])
    b = yjs.call("wait", name="b", text=a["text"])
    assert a["stateVector"] == b["stateVector"]
    assert (a["text"], a["map"]) == (b["text"], b["map"])
    assert a["text"]

    yjs.call("disconnect", name="a")
    yjs.call("disconnect", name="b")
    assert stored_updates(document)
    assert stored_text(document) == a["text"]
