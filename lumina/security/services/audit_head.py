"""The audit chain's signed head, exported to a file and the log, and checked against later.

The chain shows a changed or removed entry anywhere except at its end: whoever can delete
the newest rows (a database superuser can switch the append-only triggers off) leaves a
shorter chain that still verifies. A head names the newest entry at export time
(``sequence``, ``hash``, ``recorded_at``) with the export time, and is signed with
HMAC-SHA256 under a key derived by HKDF-SHA256 from the newest key-encryption key of
``LUMINA_MASTER_KEYS`` (``info`` = the head format), so it cannot be forged without the
master keys, which the database does not hold. Heads are appended as JSON lines to
``LUMINA_AUDIT_HEAD_FILE`` and logged (logger ``lumina.security.audit.head``); kept on
another system, either proves later that the chain still reaches every exported head.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone

from lumina.security.crypto.keyring import current_keyring
from lumina.security.models.audit import AuditEntry
from lumina.security.services.audit import GENESIS_HASH, VerifyResult, audit_verify

logger = structlog.get_logger("lumina.security.audit.head")

HEAD_FORMAT = "lumina.audit-head.v1"
_SIGNED_FIELDS = ("format", "sequence", "hash", "recorded_at", "exported_at", "key_version")


class HeadError(ValueError):
    """An exported head that cannot be trusted: malformed, or its signature does not hold."""


@dataclasses.dataclass(frozen=True)
class AuditHead:
    sequence: int
    hash: str
    recorded_at: str | None
    exported_at: str
    key_version: int
    signature: str
    format: str = HEAD_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))


def _head_key(version: int) -> bytes:
    # cryptography loads here, with the first head exported or checked, not at start-up.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    kek = current_keyring().key(version)
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=HEAD_FORMAT.encode("ascii")
    ).derive(kek)


def _signature(fields: dict[str, Any], version: int) -> str:
    signed = {name: fields[name] for name in _SIGNED_FIELDS}
    message = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(_head_key(version), message, hashlib.sha256).hexdigest()


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def audit_head_current() -> AuditHead:
    """The chain's newest entry now, signed (sequence 0 and the genesis hash when empty)."""
    last = AuditEntry.objects.order_by("-sequence").values("sequence", "hash", "recorded_at")
    newest = last.first()
    fields: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "sequence": newest["sequence"] if newest else 0,
        "hash": newest["hash"] if newest else GENESIS_HASH,
        "recorded_at": _iso(newest["recorded_at"]) if newest else None,
        "exported_at": _iso(timezone.now()),
        "key_version": current_keyring().current_version,
    }
    return AuditHead(signature=_signature(fields, fields["key_version"]), **fields)


def audit_head_export(*, path: Path | None = None) -> AuditHead:
    """Sign the current head, append it to ``path`` (or the configured file) and log it."""
    head = audit_head_current()
    target = path if path is not None else settings.LUMINA_AUDIT_HEAD_FILE
    if target is not None:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        # One short line per write in append mode: concurrent exporters never interleave.
        with target.open("a", encoding="utf-8") as handle:
            handle.write(head.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    logger.info("audit head", **head.as_dict())
    return head


def audit_head_parse(document: dict[str, Any]) -> AuditHead:
    """Check one exported head (a head file's line, or a logged one: other keys ignored)."""
    try:
        fields = {name: document[name] for name in _SIGNED_FIELDS}
        signature = document["signature"]
    except (KeyError, TypeError):
        raise HeadError("not an audit head (fields are missing)") from None
    if fields["format"] != HEAD_FORMAT:
        raise HeadError(f"unknown head format {fields['format']!r}")
    if (
        not isinstance(fields["sequence"], int)
        or isinstance(fields["sequence"], bool)
        or fields["sequence"] < 0
        or not isinstance(fields["hash"], str)
        or not isinstance(fields["key_version"], int)
        or not isinstance(signature, str)
    ):
        raise HeadError("malformed audit head")
    if fields["key_version"] not in current_keyring():
        raise HeadError(
            f"signed with key version {fields['key_version']}, which is not in the keyring"
        )
    if not hmac.compare_digest(_signature(fields, fields["key_version"]), signature):
        raise HeadError("the signature does not match: the head was altered or forged")
    return AuditHead(signature=signature, **fields)


def audit_heads_read(lines: Iterable[str]) -> list[AuditHead]:
    """Every head in a head file (JSON lines); the first untrustworthy line fails it all."""
    heads = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            raise HeadError(f"line {number}: not JSON") from None
        try:
            heads.append(audit_head_parse(document))
        except HeadError as error:
            raise HeadError(f"line {number}: {error}") from None
    if not heads:
        raise HeadError("the file holds no audit head")
    return heads


def audit_verify_against(heads: list[AuditHead]) -> VerifyResult:
    """Verify the chain, then that it still reaches every exported head unchanged."""
    result = audit_verify()
    if not result.ok:
        return result
    newest = AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    newest = newest or 0
    for head in sorted(heads, key=lambda h: h.sequence, reverse=True):
        if head.sequence == 0:
            continue
        if head.sequence > newest:
            reason = (
                f"the chain ends at entry {newest}, but the head exported at "
                f"{head.exported_at} names entry {head.sequence}: newer entries were removed"
            )
            logger.warning("audit chain shorter than an exported head", reason=reason)
            return dataclasses.replace(result, ok=False, first_broken_seq=newest + 1, reason=reason)
        stored = AuditEntry.objects.filter(sequence=head.sequence).values_list("hash", flat=True)
        if stored.first() != head.hash:
            reason = (
                f"entry {head.sequence} differs from the head exported at {head.exported_at}: "
                "the chain was rewritten"
            )
            logger.warning("audit chain differs from an exported head", reason=reason)
            return dataclasses.replace(
                result, ok=False, first_broken_seq=head.sequence, reason=reason
            )
    return result
