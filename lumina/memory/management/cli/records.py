"""``memory import|export|consolidate|purge`` and the records' lines of ``memory stats``.

Whoever runs manage.py controls the deployment, so the CLI acts as the system actor; a
user's memory is named with ``--user``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from django.core.management.base import CommandError

from lumina.kernel.errors import ApplicationError
from lumina.memory.models.records import MemoryRecord
from lumina.memory.selectors.records import record_stats
from lumina.memory.services.expiry import (
    DEFAULT_PURGE_AFTER_DAYS,
    records_decay_apply,
    records_expire_due,
    records_purge,
)
from lumina.memory.services.imports import JSON, JSONL, records_export, records_import
from lumina.memory.services.records import extraction_errors_retry, records_embed_pending
from lumina.security.api import Actor

CLI_ACTOR = Actor.system("cli")


def _user(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"--user: {value!r} is not a user id (UUID)") from None


def register(commands) -> None:
    imported = commands.add_parser("import", help="Import a JSON or JSONL conversation history.")
    imported.add_argument("file", help="The file ('-' reads standard input).")
    imported.add_argument("--user", required=True, help="Whose memory (user id).")
    imported.add_argument("--format", choices=(JSON, JSONL), help="Default: by the extension.")
    imported.add_argument("--agent", default="", help="Default agent id of the turns.")
    imported.add_argument("--session", default="", help="Default session id of the turns.")
    imported.set_defaults(handler=import_file)

    exported = commands.add_parser("export", help="A user's turns as JSONL (import reads it).")
    exported.add_argument("--user", required=True, help="Whose memory (user id).")
    exported.add_argument("--facts", action="store_true", help="Add the facts too.")
    exported.add_argument("--output", help="A file (default standard output).")
    exported.set_defaults(handler=export_file)

    consolidate = commands.add_parser(
        "consolidate",
        help="Finish pending embeddings and facts, re-apply scope TTLs, expire what is due, "
        "ask the chat model again about turns whose extraction failed.",
    )
    consolidate.add_argument("--user", help="Only this user's memory (default everyone's).")
    consolidate.set_defaults(handler=consolidate_all)

    purge = commands.add_parser("purge", help="Delete memories that expired long enough ago.")
    purge.add_argument(
        "--older-than",
        type=float,
        default=DEFAULT_PURGE_AFTER_DAYS,
        metavar="DAYS",
        help=f"Expired more than DAYS ago (default {DEFAULT_PURGE_AFTER_DAYS:g}).",
    )
    purge.set_defaults(handler=purge_expired)


def import_file(command, *, file, user, format, agent, session, **_) -> None:
    fmt = format or (JSONL if file.endswith((".jsonl", ".ndjson")) else JSON)
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{file}: {error}") from None
    try:
        result = records_import(
            actor=CLI_ACTOR,
            text=text,
            fmt=fmt,
            user_id=_user(user),
            agent_id=agent,
            session_id=session,
        )
    except ApplicationError as error:
        raise CommandError(error.message) from None
    command.stdout.write(
        f"imported {result.imported} turns ({result.skipped} already stored) in "
        f"{result.sessions} sessions; {result.facts} facts; embeddings {result.embedding}"
    )


def export_file(command, *, user, facts, output, **_) -> None:
    lines = records_export(actor=CLI_ACTOR, user_id=_user(user), include_facts=facts)
    if output:
        with Path(output).open("w", encoding="utf-8") as handle:
            count = 0
            for line in lines:
                handle.write(line + "\n")
                count += 1
        command.stdout.write(f"exported {count} records to {output}")
        return
    for line in lines:
        command.stdout.write(line)


def consolidate_all(command, *, user, **_) -> None:
    owner = _user(user) if user else None
    pending = MemoryRecord.objects.filter(embedding__isnull=True)
    if owner is not None:
        pending = pending.filter(owner_id=owner)
    embedded = 0
    owners = pending.values_list("owner_id", flat=True).distinct()
    try:
        for owner_id in list(owners):
            ids = list(pending.filter(owner_id=owner_id).values_list("id", flat=True))
            for start in range(0, len(ids), 500):
                embedded += records_embed_pending(
                    owner_id=owner_id, record_ids=ids[start : start + 500]
                )
    except ApplicationError as error:
        command.stderr.write(f"pending embeddings left for later: {error.message}")
    changed = records_decay_apply(owner_id=owner)
    expired = records_expire_due()
    tried, resolved = extraction_errors_retry(owner_id=owner)
    command.stdout.write(
        f"embedded {embedded} pending records; {changed} expiry times set from policies; "
        f"{expired} records expired; {resolved} of {tried} extraction errors resolved"
    )


def purge_expired(command, *, older_than, **_) -> None:
    if older_than < 0:
        raise CommandError("--older-than: a number of days, 0 or more")
    deleted = records_purge(older_than_days=older_than)
    command.stdout.write(f"purged {deleted} records expired more than {older_than:g} days ago")


def stats_lines() -> list[str]:
    counts = record_stats()
    return [
        f"memories: {counts['total']} ({counts['working']} turns, {counts['semantic']} facts, "
        f"{counts['episodic']} summaries, {counts['pinned']} pinned) of {counts['owners']} users",
        f"memories superseded: {counts['superseded']}; expired: {counts['expired']}; "
        f"awaiting embeddings: {counts['unembedded']}; "
        f"unresolved extraction errors: {counts['extraction_errors']}",
    ]
