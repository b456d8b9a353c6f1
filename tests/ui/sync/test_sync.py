"""Stock y-websocket clients editing one document through /ws/documents/{id}/."""

from __future__ import annotations

import random
import time

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


def test_a_late_joiner_after_everyone_left_gets_the_whole_document(servers, yjs):
    from lumina.ui.models import DocumentSnapshot

    server = servers(LUMINA_DOCUMENTS_COMPACT_EVERY="10")
    owner = make_user("owner")
    document = make_document(owner)
    token = make_token(owner)
    yjs.connect("a", server, document.id, token=token)
    yjs.call("synced", name="a")
    for number in range(25):
        yjs.call("insert", name="a", index=1000, text=f"{number} ")
    yjs.call("set", name="a", key="status", value="draft")
    written = yjs.call("state", name="a")["text"]
    yjs.call("disconnect", name="a")

    yjs.connect("late", server, document.id, token=token)
    late = yjs.call("wait", name="late", text=written, mapKeys=["status"])
    assert late["map"] == {"status": "draft"}
    # The room compacted along the way (in the background); the history stays whole.
    for _ in range(150):
        if DocumentSnapshot.objects.filter(document=document).exists():
            break
        time.sleep(0.1)
    else:
        pytest.fail("no snapshot written")
    assert len(stored_updates(document)) == 26


def test_an_update_appended_outside_the_socket_reaches_connected_clients(server, yjs):
    from pycrdt import Doc, Text

    from lumina.ui.services.document_state import update_append, update_publish

    owner = make_user("owner")
    document = make_document(owner)
    yjs.connect("a", server, document.id, token=make_token(owner))
    yjs.call("synced", name="a")

    # As a restore or an import does, from another process (here without a shared layer).
    doc = Doc()
    doc.get("t", type=Text).insert(0, "restored")
    update = doc.get_update()
    seq = update_append(document_id=document.id, update=update, user_id=owner.pk)
    update_publish(document_id=document.id, seq=seq, update=update)

    yjs.call("wait", name="a", text="restored")


def test_a_server_killed_and_restarted_loses_no_acknowledged_update(server, yjs):
    owner = make_user("owner")
    editor = make_user("editor")
    document = make_document(owner)
    share(document, owner, editor, "edit")
    yjs.connect("writer", server, document.id, token=make_token(owner))
    yjs.connect("reader", server, document.id, token=make_token(editor))
    yjs.call("synced", name="writer")
    yjs.call("synced", name="reader")
    for number in range(30):
        yjs.call("set", name="writer", key=f"k{number}", value=number)
    # The reader holding them means the server relayed them, which it does once stored.
    acknowledged = yjs.call("wait", name="reader", mapKeys=[f"k{n}" for n in range(30)])["map"]

    server.kill()
    server.start()

    yjs.connect("after", server, document.id, token=make_token(owner))
    after = yjs.call("wait", name="after", mapKeys=list(acknowledged))
    assert after["map"] == acknowledged


def test_a_viewers_edits_are_not_applied_but_they_receive_the_document(server, yjs):
    owner = make_user("owner")
    viewer = make_user("viewer")
    document = make_document(owner)
    share(document, owner, viewer, "view")
    yjs.connect("owner", server, document.id, token=make_token(owner))
    yjs.connect("viewer", server, document.id, token=make_token(viewer))
    yjs.call("synced", name="owner")
    yjs.call("synced", name="viewer")

    yjs.call("insert", name="viewer", index=0, text="vandalism ")
    yjs.call("set", name="viewer", key="viewer-was-here", value=True)
    yjs.call("insert", name="owner", index=0, text="owner's words")
    yjs.call("set", name="owner", key="owner-done", value=True)
    owner_state = yjs.call("wait", name="owner", text="owner's words")
    viewer_state = yjs.call("wait", name="viewer", mapKeys=["owner-done"])
    assert "owner's words" in viewer_state["text"]  # the viewer receives edits

    yjs.call("disconnect", name="viewer")
    yjs.connect("fresh", server, document.id, token=make_token(owner))
    fresh = yjs.call("wait", name="fresh", text="owner's words")
    assert fresh["map"] == {"owner-done": True}
    assert owner_state["map"] == {"owner-done": True}
    assert "vandalism" not in stored_text(document)


def test_awareness_is_relayed_and_removed_when_a_client_goes_away(server, yjs):
    owner = make_user("owner")
    editor = make_user("editor")
    document = make_document(owner)
    share(document, owner, editor, "edit")
    yjs.connect("a", server, document.id, token=make_token(owner))
    yjs.connect("b", server, document.id, token=make_token(editor))
    yjs.call("synced", name="a")
    yjs.call("synced", name="b")

    yjs.call("awareness", name="a", state={"user": "ada", "cursor": 3})
    seen = yjs.call("wait", name="b", awarenessCount=1)
    assert list(seen["awareness"].values()) == [{"user": "ada", "cursor": 3}]

    # A late joiner is told who is there.
    yjs.connect("c", server, document.id, token=make_token(owner))
    yjs.call("wait", name="c", awarenessCount=1)

    # The socket dies without a goodbye: the server removes the presence.
    yjs.call("terminate", name="a")
    yjs.call("wait", name="b", awarenessCount=0)
    yjs.call("wait", name="c", awarenessCount=0)


def test_clients_on_two_processes_sharing_redis_converge(servers, yjs):
    from tests.ui.sync.conftest import REDIS_URL, require_redis

    require_redis()
    first = servers(REDIS_URL=REDIS_URL)
    second = servers(REDIS_URL=REDIS_URL)
    owner = make_user("owner")
    editor = make_user("editor")
    document = make_document(owner)
    share(document, owner, editor, "edit")
    yjs.connect("a", first, document.id, token=make_token(owner))
    yjs.connect("b", second, document.id, token=make_token(editor))
    yjs.call("synced", name="a")
    yjs.call("synced", name="b")

    rng = random.Random(5)  # noqa: S311 (a seeded edit sequence)
    for step in range(30):
        for name in ("a", "b"):
            if rng.random() < 0.7:
                yjs.call("insert", name=name, index=rng.randrange(40), text=f"{name}{step}.")
            else:
                yjs.call("set", name=name, key=f"k{rng.randrange(4)}", value=step)
    yjs.call("set", name="a", key="end-a", value=1)
    yjs.call("set", name="b", key="end-b", value=1)
    yjs.call("awareness", name="a", state={"user": "a"})
    a = yjs.call("wait", name="a", mapKeys=["end-a", "end-b"])
    b = yjs.call("wait", name="b", mapKeys=["end-a", "end-b"], text=a["text"], awarenessCount=1)
    assert a["stateVector"] == b["stateVector"]
    assert a["map"] == b["map"]

    # Each process's room holds the whole document: a joiner on either gets it all.
    yjs.connect("c", second, document.id, token=make_token(owner))
    c = yjs.call("wait", name="c", text=a["text"], mapKeys=["end-a", "end-b"])
    assert c["stateVector"] == a["stateVector"]
    assert stored_text(document) == a["text"]
