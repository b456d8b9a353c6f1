"""``security audit-verify``: check the audit log's hash chain; exit 1 when it is broken."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from lumina.security.services.audit import VERIFY_CHUNK_SIZE, audit_verify


def register(commands) -> None:
    verify = commands.add_parser(
        "audit-verify", help="Verify the audit log's hash chain (exit status 1 when broken)."
    )
    verify.add_argument(
        "--chunk-size", type=int, default=VERIFY_CHUNK_SIZE, help="Entries read per round trip."
    )
    verify.set_defaults(handler=verify_audit_log)


def verify_audit_log(command: BaseCommand, *, chunk_size: int, **_) -> None:
    if chunk_size < 1:
        raise CommandError("--chunk-size must be at least 1")
    result = audit_verify(chunk_size=chunk_size)
    if not result.ok:
        raise CommandError(
            f"audit chain broken at entry {result.first_broken_seq}: {result.reason} "
            f"({result.checked} entries checked)",
            returncode=1,
        )
    head = f", head {result.head_hash}" if result.head_hash else ""
    command.stdout.write(f"{result.checked} entries checked: OK{head}")
