"""``security rotate-keys``: re-wrap every data key under the newest key-encryption key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from lumina.security.crypto.keyring import KeyringError
from lumina.security.services.crypto import ROTATION_BATCH_SIZE, keys_rotate


def register(commands) -> None:
    rotate = commands.add_parser(
        "rotate-keys",
        help="Re-wrap data keys under the newest key-encryption key (online, idempotent).",
    )
    rotate.add_argument(
        "--batch-size", type=int, default=ROTATION_BATCH_SIZE, help="Data keys per transaction."
    )
    rotate.set_defaults(handler=rotate_keys)


def rotate_keys(command: BaseCommand, *, batch_size: int, **_) -> None:
    if batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    try:
        report = keys_rotate(batch_size=batch_size)
    except KeyringError as exc:
        raise CommandError(str(exc)) from None
    command.stdout.write(
        f"key version {report.kek_version}: {report.total} data keys, "
        f"{report.rewrapped} rewrapped, {report.already_current} already current"
    )
    if report.unavailable:
        versions = ", ".join(str(v) for v in report.unavailable_versions)
        command.stderr.write(
            f"{report.unavailable} data keys are wrapped by key versions missing from "
            f"LUMINA_MASTER_KEYS ({versions}); they cannot be rotated or decrypted"
        )
    if report.failed:
        command.stderr.write(f"{report.failed} data keys did not unwrap and were left as they are")
    if report.skipped:
        command.stderr.write(
            f"{report.skipped} data keys were busy or deleted meanwhile; run again to finish"
        )
