"""``documents export|import|compact|history``: a document's content and log from a shell.

The command line acts as the system (``Actor.system("cli")``): whoever runs it holds the
database already. What it changes goes through the services, with their events.
"""

from __future__ import annotations

import pathlib
import uuid

from django.core.management.base import BaseCommand, CommandError

from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor, user_find
from lumina.ui.models import Document
from lumina.ui.selectors.document_access import document_row
from lumina.ui.selectors.documents import history, version_list
from lumina.ui.services import document_state
from lumina.ui.services.documents import document_create
from lumina.ui.services.exports import (
    FORMATS,
    document_import,
    export_of,
    state_check,
    state_from_json,
    state_from_text,
)

CLI_ACTOR = Actor.system("cli")
IMPORT_FORMATS = ("json", "text", "markdown", "yjs")
SUFFIXES = {".json": "json", ".txt": "text", ".md": "markdown", ".yjs": "yjs", ".bin": "yjs"}


def register(commands) -> None:
    export = commands.add_parser("export", help="Write a document's content.")
    export.add_argument("document", help="The document's id.")
    export.add_argument("--format", dest="output_format", choices=FORMATS, default="markdown")
    export.add_argument("--output", "-o", metavar="FILE", help="Default: standard output.")
    export.set_defaults(handler=export_document)

    load = commands.add_parser(
        "import",
        help="Load a file into a new document, or into an existing one as a new update.",
    )
    load.add_argument("file", help="A JSON export, a text or Markdown file, or a Yjs update.")
    load.add_argument("--format", dest="input_format", choices=IMPORT_FORMATS)
    load.add_argument("--document", help="An existing document's id (its history is kept).")
    load.add_argument("--title", help="A new document's title (default: the file's name).")
    load.add_argument("--owner", help="A new document's owner: a user id or email.")
    load.add_argument(
        "--root", default="content", help="text/markdown: the Yjs text to write (default content)."
    )
    load.set_defaults(handler=import_document)

    compact = commands.add_parser("compact", help="Fold documents' updates into a snapshot.")
    compact.add_argument("documents", nargs="*", help="Documents' ids (default: --all).")
    compact.add_argument("--all", action="store_true", help="Every live document.")
    compact.add_argument(
        "--min-updates", type=int, default=1, help="Only documents with this many new updates."
    )
    compact.set_defaults(handler=compact_documents)

    log = commands.add_parser("history", help="A document's versions and latest updates.")
    log.add_argument("document", help="The document's id.")
    log.add_argument("--limit", type=int, default=20, help="Updates to show (default 20).")
    log.set_defaults(handler=show_history)


def failed(error: ApplicationError) -> CommandError:
    details = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in error.fields.items())
    return CommandError(f"{error.message} {details}".strip())


def _document(reference: str) -> Document:
    try:
        document_id = uuid.UUID(reference)
    except ValueError:
        raise CommandError(f"{reference!r} is not a document id.") from None
    document = document_row(document_id)
    if document is None:
        raise CommandError(f"There is no document {reference}.")
    return document


def export_document(
    command: BaseCommand, *, document: str, output_format: str, output: str | None, **_
) -> None:
    found = _document(document)
    export = export_of(found, output_format)
    if output is None:
        command.stdout.write(export.body, ending="" if export.body.endswith("\n") else "\n")
        return
    pathlib.Path(output).write_text(export.body, encoding="utf-8")
    command.stdout.write(f"Wrote {found.title} ({export.format}) to {output}.")


def _read_state(path: pathlib.Path, input_format: str, root: str) -> bytes:
    try:
        if input_format == "yjs":
            return path.read_bytes()
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text.") from None
    if input_format == "json":
        return state_from_json(text)
    return state_from_text(text, root=root)


def import_document(
    command: BaseCommand,
    *,
    file: str,
    input_format: str | None,
    document: str | None,
    title: str | None,
    owner: str | None,
    root: str,
    **_,
) -> None:
    path = pathlib.Path(file)
    input_format = input_format or SUFFIXES.get(path.suffix.lower())
    if input_format is None:
        raise CommandError(f"Say --format ({', '.join(IMPORT_FORMATS)}) for {path.name}.")
    user = None
    if document is None:
        if owner is None:
            raise CommandError("A new document needs --owner (a user id or email).")
        user = user_find(owner)
        if user is None:
            raise CommandError(f"There is no user {owner}.")
    target = _document(document) if document is not None else None
    try:
        state = _read_state(path, input_format, root)
        state_check(state, field="file")
        if target is None:
            target = document_create(actor=CLI_ACTOR, title=title or path.stem, owner_id=user.id)
        seq = document_import(actor=CLI_ACTOR, document_id=target.id, update=state)
    except ApplicationError as error:
        raise failed(error) from None
    command.stdout.write(f"Imported {path.name} into {target.title} ({target.id}) as update {seq}.")


def compact_documents(
    command: BaseCommand, *, documents: list[str], all: bool, min_updates: int, **_
) -> None:
    if not documents and not all:
        raise CommandError("Name documents, or say --all.")
    if all:
        ids = list(Document.objects.filter(deleted_at__isnull=True).values_list("id", flat=True))
    else:
        ids = [_document(reference).id for reference in documents]
    compacted = 0
    for document_id in ids:
        pending = document_state.updates_since_snapshot(document_id)
        if pending < max(min_updates, 1):
            continue
        seq = document_state.compact(document_id)
        if seq is not None:
            compacted += 1
            command.stdout.write(f"{document_id}: snapshot up to update {seq} ({pending} folded).")
    command.stdout.write(f"Compacted {compacted} of {len(ids)} documents.")


def show_history(command: BaseCommand, *, document: str, limit: int, **_) -> None:
    found = _document(document)
    write = command.stdout.write
    write(f"{found.title} ({found.id}), owner {found.owner_id}")
    versions = list(version_list(document=found))
    write(f"Versions ({len(versions)}):" if versions else "Versions: none")
    for version in versions:
        write(
            f"  {version.created_at:%Y-%m-%d %H:%M:%S}  up to {version.upto_seq:>6}  {version.name}"
        )
    rows = history(document=found, limit=max(limit, 1))
    write(f"Latest updates ({len(rows)}):" if rows else "Updates: none")
    for row in rows:
        who = row["user_id"] or "system"
        write(
            f"  {row['seq']:>6}  {row['created_at']:%Y-%m-%d %H:%M:%S}  {row['size']:>7} B  {who}"
        )
