"""Versions (a restore appends an update; history is never rewritten; live rooms hear it)
and exports of Yjs content as text, Markdown and JSON."""

from __future__ import annotations

import base64

import pytest
from pycrdt import Doc, Text

from lumina.kernel.models import OutboxEvent
from lumina.ui.models import DocumentUpdate, DocumentVersion
from lumina.ui.services import document_state
from lumina.ui.services.content import to_json
from tests.ui.documents.conftest import (
    DOCUMENTS,
    append,
    client_as,
    edit_text,
    make_document,
    map_state,
    text_state,
    tiptap_state,
)
from tests.ui.yjs_inputs import HUGE_COUNT_UPDATE, PANICKING_UPDATE

pytestmark = pytest.mark.django_db


def _text(document, root: str = "codemirror") -> str:
    doc = Doc()
    doc.apply_update(document_state.state_load(document.id))
    return str(doc.get(root, type=Text))


@pytest.fixture
def published():
    """What document_state.update_publish hands to the live rooms, after commit."""
    seen: list[tuple] = []
    document_state.publisher_set(lambda *args: seen.append(args))
    yield seen
    document_state.publisher_set(None)


def test_restoring_a_version_appends_an_update_and_reaches_live_rooms(
    people, published, django_capture_on_commit_callbacks
):
    document = make_document(people.developer, content=text_state("first draft"))
    client = client_as(people.developer)
    url = f"{DOCUMENTS}/{document.id}/versions"

    created = client.post(url, {"name": "Draft 1"}, format="json")
    assert created.status_code == 201, created.content
    version = created.json()
    assert (version["name"], version["upto_seq"]) == ("Draft 1", 1)
    edit_text(document, "second draft, much better")
    history_before = list(
        DocumentUpdate.objects.filter(document=document).values_list("seq", "data")
    )

    with django_capture_on_commit_callbacks(execute=True):
        restored = client.post(f"{url}/{version['id']}/restore")

    assert restored.status_code == 200, restored.content
    seq = restored.json()["seq"]
    assert seq == 3
    assert _text(document) == "first draft"
    # History kept: the earlier updates are untouched, one more was appended.
    history_after = list(
        DocumentUpdate.objects.filter(document=document).values_list("seq", "data")
    )
    assert history_after[:2] == history_before
    assert [row[0] for row in history_after] == [1, 2, 3]
    # The live rooms got that very update.
    assert [(p[0], p[1]) for p in published] == [(document.id, 3)]
    assert bytes(history_after[2][1]) == published[0][2]
    # A client holding the edited state converges on the restored content with it.
    client_doc = Doc()
    for _, data in history_before:
        client_doc.apply_update(bytes(data))
    client_doc.apply_update(published[0][2])
    assert str(client_doc.get("codemirror", type=Text)) == "first draft"
    listed = client.get(url).json()
    assert [row["name"] for row in listed["results"]] == ["Draft 1"]
    names = set(OutboxEvent.objects.values_list("name", flat=True))
    assert {"ui.DocumentVersionCreated", "ui.DocumentVersionRestored"} <= names


def test_a_restore_brings_back_xml_maps_and_removes_roots_added_since(people):
    document = make_document(people.developer, content=tiptap_state())
    append(document, map_state({"status": "draft", "count": 1}))
    client = client_as(people.developer)
    version = client.post(
        f"{DOCUMENTS}/{document.id}/versions", {"name": "v1"}, format="json"
    ).json()
    wanted = to_json(document_state.state_load(document.id))
    append(document, map_state({"status": "final", "extra": True}))
    edit_text(document, "a new text root")

    client.post(f"{DOCUMENTS}/{document.id}/versions/{version['id']}/restore")

    assert to_json(document_state.state_load(document.id)) == wanted


def _copy_of(document) -> Doc:
    """A client's copy of the document as the database has it."""
    doc = Doc()
    doc.apply_update(document_state.state_load(document.id))
    return doc


def _b64(doc: Doc) -> str:
    return base64.b64encode(doc.get_update()).decode()


def test_a_version_keeps_the_callers_edits_that_have_not_reached_the_database(
    people, published, django_capture_on_commit_callbacks
):
    document = make_document(people.developer, content=text_state("First dra"))
    copy = _copy_of(document)
    copy.get("codemirror", type=Text).insert(9, "ft")  # still on its way over the websocket
    url = f"{DOCUMENTS}/{document.id}/versions"

    with django_capture_on_commit_callbacks(execute=True):
        created = client_as(people.developer).post(
            url, {"name": "draft one", "state": _b64(copy)}, format="json"
        )

    assert created.status_code == 201, created.content
    version = DocumentVersion.objects.get(pk=created.json()["id"])
    kept = Doc()
    kept.apply_update(bytes(version.state))
    assert str(kept.get("codemirror", type=Text)) == "First draft"
    assert _text(document) == "First draft"
    # Stored as one update, and relayed to the live rooms like any other.
    assert version.upto_seq == 2
    assert [(p[0], p[1]) for p in published] == [(document.id, 2)]


def test_a_deletion_not_yet_stored_is_kept_too(people):
    """A deletion moves no clock: a state vector alone would not show it missing."""
    document = make_document(people.developer, content=text_state("First draft!!"))
    copy = _copy_of(document)
    del copy.get("codemirror", type=Text)[11:13]
    url = f"{DOCUMENTS}/{document.id}/versions"

    created = client_as(people.developer).post(
        url, {"name": "tidy", "state": _b64(copy)}, format="json"
    )

    assert created.status_code == 201, created.content
    assert _text(document) == "First draft"


def test_a_copy_with_nothing_new_appends_nothing(people):
    document = make_document(people.developer, content=text_state("as stored"))
    url = f"{DOCUMENTS}/{document.id}/versions"

    created = client_as(people.developer).post(
        url, {"name": "same", "state": _b64(_copy_of(document))}, format="json"
    )

    assert created.status_code == 201, created.content
    assert created.json()["upto_seq"] == 1
    assert DocumentUpdate.objects.filter(document=document).count() == 1


def test_a_restore_replaces_the_callers_edits_that_have_not_reached_the_database(people):
    document = make_document(people.developer, content=text_state("First draft"))
    client = client_as(people.developer)
    url = f"{DOCUMENTS}/{document.id}/versions"
    version = client.post(url, {"name": "draft one"}, format="json").json()
    edit_text(document, "First draft, then")
    copy = _copy_of(document)
    copy.get("codemirror", type=Text).insert(17, " changes")  # not stored yet

    restored = client.post(f"{url}/{version['id']}/restore", {"state": _b64(copy)}, format="json")

    assert restored.status_code == 200, restored.content
    assert _text(document) == "First draft"
    # The caller's copy, given every stored update, converges on the restored content.
    for data in DocumentUpdate.objects.filter(document=document).values_list("data", flat=True):
        copy.apply_update(bytes(data))
    assert str(copy.get("codemirror", type=Text)) == "First draft"


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ("not base64!", "Not base64."),
        (base64.b64encode(b"\xff\x00 not an update").decode(), "Not a Yjs update."),
        (base64.b64encode(PANICKING_UPDATE).decode(), "Not a Yjs update."),
        (base64.b64encode(HUGE_COUNT_UPDATE).decode(), "Not a Yjs update."),
    ],
)
def test_a_copy_that_is_not_a_yjs_state_is_refused_naming_the_field(people, state, problem):
    document = make_document(people.developer, content=text_state("kept safe"))
    version = DocumentVersion.objects.create(
        document=document, name="v1", upto_seq=1, state=document_state.state_load(document.id)
    )
    client = client_as(people.developer)
    url = f"{DOCUMENTS}/{document.id}/versions"

    for target, body in [
        (url, {"name": "broken", "state": state}),
        (f"{url}/{version.id}/restore", {"state": state}),
    ]:
        response = client.post(target, body, format="json")
        assert response.status_code == 400, (target, response.content)
        assert response.json()["error"]["fields"]["state"] == [problem]
    assert DocumentVersion.objects.filter(document=document).count() == 1
    assert _text(document) == "kept safe"


def test_text_export_of_a_codemirror_document(people):
    document = make_document(people.developer, content=text_state("line one\nline two"))
    response = client_as(people.developer).get(
        f"{DOCUMENTS}/{document.id}/export", {"format": "text"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "line one\nline two\n"


def test_markdown_export_renders_tiptap_blocks_and_marks(people):
    document = make_document(people.developer, "Roadmap", content=tiptap_state())
    response = client_as(people.developer).get(
        f"{DOCUMENTS}/{document.id}/export", {"format": "markdown"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response.content.decode() == (
        "# Roadmap\n\n"
        "## Plan\n\n"
        "Ship it **bold** and [linked](https://example.org/)\n\n"
        "- one\n"
        "- two\n"
    )


def test_plain_text_export_of_tiptap_drops_the_markup(people):
    document = make_document(people.developer, content=tiptap_state())
    response = client_as(people.developer).get(
        f"{DOCUMENTS}/{document.id}/export", {"format": "text"}
    )
    assert response.content.decode() == "Plan\n\nShip it bold and linked\n\n- one\n- two\n"


def test_json_export_carries_the_content_and_the_whole_yjs_state(people):
    state = tiptap_state()
    document = make_document(people.developer, "J", content=state)
    append(document, map_state({"status": "draft"}))

    body = (
        client_as(people.developer)
        .get(f"{DOCUMENTS}/{document.id}/export", {"format": "json"})
        .json()
    )

    assert body["title"] == "J"
    assert body["seq"] == 2
    assert body["content"]["meta"] == {"kind": "map", "value": {"status": "draft"}}
    default = body["content"]["default"]
    assert default["kind"] == "xml"
    assert default["content"][0] == {
        "type": "heading",
        "attrs": {"level": 2},
        "content": [{"type": "text", "text": "Plan"}],
    }
    assert {"type": "text", "text": "bold", "marks": [{"type": "bold"}]} in default["content"][1][
        "content"
    ]
    restored = Doc()
    restored.apply_update(base64.b64decode(body["yjs_state"]))
    assert to_json(base64.b64decode(body["yjs_state"])) == to_json(
        document_state.state_load(document.id)
    )


def test_an_empty_document_exports_empty(people):
    document = make_document(people.developer, "Empty")
    client = client_as(people.developer)
    url = f"{DOCUMENTS}/{document.id}/export"
    assert client.get(url, {"format": "text"}).content == b""
    assert client.get(url, {"format": "markdown"}).content.decode() == "# Empty\n"
    assert client.get(url, {"format": "json"}).json()["content"] == {}


def test_markdown_of_prosemirror_lists_quotes_code_rules_breaks_and_tasks():
    from pycrdt import XmlElement, XmlFragment, XmlText

    from lumina.ui.services.exports import render_markdown, render_text

    doc = Doc()
    fragment = doc.get("prosemirror", type=XmlFragment)

    def paragraph(parent, text: str) -> None:
        parent.children.append(XmlElement("paragraph")).children.append(XmlText(text))

    ordered = fragment.children.append(XmlElement("ordered_list", {"order": 3}))
    item = ordered.children.append(XmlElement("list_item"))
    paragraph(item, "three")
    nested = item.children.append(XmlElement("bullet_list"))
    paragraph(nested.children.append(XmlElement("list_item")), "nested")
    paragraph(ordered.children.append(XmlElement("list_item")), "four")
    paragraph(fragment.children.append(XmlElement("blockquote")), "quoted")
    code = fragment.children.append(XmlElement("code_block", {"language": "python"}))
    code.children.append(XmlText("print(1)\nprint(2)"))
    fragment.children.append(XmlElement("horizontal_rule"))
    lines = fragment.children.append(XmlElement("paragraph"))
    lines.children.append(XmlText("a"))
    lines.children.append(XmlElement("hard_break"))
    lines.children.append(XmlText("b"))
    tasks = fragment.children.append(XmlElement("taskList"))
    paragraph(tasks.children.append(XmlElement("taskItem", {"checked": True})), "done")
    state = doc.get_update()

    assert render_markdown(state, title="T") == (
        "# T\n\n3. three\n   - nested\n4. four\n\n> quoted\n\n"
        "```python\nprint(1)\nprint(2)\n```\n\n---\n\na  \nb\n\n- [x] done\n"
    )
    assert render_text(state) == (
        "3. three\n   - nested\n4. four\n\nquoted\n\nprint(1)\nprint(2)\n\na\nb\n\n- done\n"
    )


def test_an_export_names_its_file_after_the_title_in_any_script(people):
    document = make_document(people.developer, 'Доклад "Q3"/plan', content=text_state("x"))
    response = client_as(people.developer).get(
        f"{DOCUMENTS}/{document.id}/export", {"format": "markdown"}
    )
    assert response["Content-Disposition"] == (
        'inline; filename="______ _Q3__plan.md"; '
        "filename*=UTF-8''%D0%94%D0%BE%D0%BA%D0%BB%D0%B0%D0%B4%20_Q3__plan.md"
    )
