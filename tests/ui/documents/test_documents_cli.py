"""``manage.py documents export|import|compact|history``."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from lumina.ui.models import Document, DocumentSnapshot, DocumentUpdate, DocumentVersion
from lumina.ui.services import document_state
from lumina.ui.services.content import to_json
from tests.ui.documents.conftest import edit_text, make_document, text_state, tiptap_state

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("documents", *args, stdout=out)
    return out.getvalue()


def test_export_writes_each_format(people, tmp_path):
    document = make_document(people.developer, "Roadmap", content=tiptap_state())

    assert run("export", str(document.id), "--format", "text").startswith("Plan\n\nShip it")
    assert run("export", str(document.id)).startswith("# Roadmap\n\n## Plan")
    target = tmp_path / "roadmap.json"
    run("export", str(document.id), "--format", "json", "--output", str(target))
    assert json.loads(target.read_text())["title"] == "Roadmap"


def test_a_json_export_imports_into_a_new_document_with_the_same_content(people, tmp_path):
    source = make_document(people.developer, "Roadmap", content=tiptap_state())
    exported = tmp_path / "roadmap.json"
    run("export", str(source.id), "--format", "json", "-o", str(exported))

    output = run("import", str(exported), "--owner", people.viewer.email, "--title", "Copy")

    copy = Document.objects.get(title="Copy")
    assert copy.owner_id == people.viewer.pk
    assert "as update 1" in output
    assert to_json(document_state.state_load(copy.id)) == to_json(
        document_state.state_load(source.id)
    )


def test_importing_into_an_existing_document_appends_one_update(people, tmp_path):
    document = make_document(people.developer, content=text_state("old", root="content"))
    file = tmp_path / "notes.md"
    file.write_text("# New\n\nwords\n")

    run("import", str(file), "--document", str(document.id))

    assert DocumentUpdate.objects.filter(document=document).count() == 2
    content = to_json(document_state.state_load(document.id))
    assert content["content"]["text"] == "# New\n\nwords\n"


def test_import_refuses_bad_files_naming_the_problem(people, tmp_path):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(CommandError, match="Not a Lumina document export"):
        run("import", str(garbage), "--owner", people.developer.email)
    update = tmp_path / "bad.yjs"
    update.write_bytes(b"\xff\x00\x13garbage")
    with pytest.raises(CommandError, match="Yjs"):
        run("import", str(update), "--owner", people.developer.email)
    with pytest.raises(CommandError, match="--owner"):
        run("import", str(garbage))
    with pytest.raises(CommandError, match="no user"):
        run("import", str(garbage), "--owner", "nobody@nowhere.example")
    assert not DocumentUpdate.objects.exists()


def test_compact_folds_updates_into_a_snapshot_and_keeps_them(people):
    document = make_document(people.developer, content=text_state("a"))
    edit_text(document, "ab")
    edit_text(document, "abc")

    output = run("compact", str(document.id))

    assert "snapshot up to update 3" in output
    assert DocumentSnapshot.objects.get(document=document).upto_seq == 3
    assert DocumentUpdate.objects.filter(document=document).count() == 3
    assert "Compacted 0 of 1" in run("compact", "--all")
    with pytest.raises(CommandError):
        run("compact")


def test_history_lists_versions_and_updates(people):
    document = make_document(people.developer, "Log", content=text_state("a"))
    edit_text(document, "ab")
    DocumentVersion.objects.create(
        document=document, name="first", upto_seq=1, state=document_state.state_load(document.id)
    )

    output = run("history", str(document.id), "--limit", "5")

    assert "Log" in output
    assert "first" in output
    assert "Latest updates (2):" in output
    with pytest.raises(CommandError, match="no document"):
        run("history", "00000000-0000-4000-8000-000000000000")
