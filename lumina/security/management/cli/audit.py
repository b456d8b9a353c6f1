"""``security audit-verify`` and ``security audit-head``: check the audit chain; export its head.

``audit-verify`` exits 1 when the chain is broken; with ``--against HEADFILE`` also when
the chain no longer reaches a head exported earlier, or the file holds a head whose
signature does not hold.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lumina.security.services.audit import VERIFY_CHUNK_SIZE, audit_verify
from lumina.security.services.audit_head import (
    HeadError,
    audit_head_export,
    audit_heads_read,
    audit_verify_against,
)


def register(commands) -> None:
    verify = commands.add_parser(
        "audit-verify", help="Verify the audit log's hash chain (exit status 1 when broken)."
    )
    verify.add_argument(
        "--chunk-size", type=int, default=VERIFY_CHUNK_SIZE, help="Entries read per round trip."
    )
    verify.add_argument(
        "--against",
        type=Path,
        metavar="HEADFILE",
        help="Also check the chain against the signed heads in this file (JSON lines, as "
        "audit-head and the periodic export write them).",
    )
    verify.set_defaults(handler=verify_audit_log)
    head = commands.add_parser(
        "audit-head",
        help="Sign the audit chain's current head, append it to the head file and print it.",
    )
    head.add_argument(
        "--output",
        type=Path,
        help="Append to this file instead of LUMINA_AUDIT_HEAD_FILE.",
    )
    head.set_defaults(handler=export_audit_head)


def verify_audit_log(
    command: BaseCommand, *, chunk_size: int, against: Path | None = None, **_
) -> None:
    if chunk_size < 1:
        raise CommandError("--chunk-size must be at least 1")
    if against is None:
        result = audit_verify(chunk_size=chunk_size)
    else:
        try:
            with against.open(encoding="utf-8") as lines:
                heads = audit_heads_read(lines)
        except OSError as error:
            raise CommandError(f"cannot read {against}: {error.strerror}", returncode=2) from None
        except HeadError as error:
            raise CommandError(f"untrusted head file {against}: {error}", returncode=1) from None
        result = audit_verify_against(heads)
    if not result.ok:
        raise CommandError(
            f"audit chain broken at entry {result.first_broken_seq}: {result.reason} "
            f"({result.checked} entries checked)",
            returncode=1,
        )
    head = f", head {result.head_hash}" if result.head_hash else ""
    heads_note = f", consistent with {len(heads)} exported head(s)" if against else ""
    command.stdout.write(f"{result.checked} entries checked: OK{head}{heads_note}")


def export_audit_head(command: BaseCommand, *, output: Path | None = None, **_) -> None:
    command.stdout.write(audit_head_export(path=output).to_json())
