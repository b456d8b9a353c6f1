"""Envelope encryption use-cases: seal and open secrets, shred them, rotate the KEK.

Each secret gets its own data key (a ``DataKey`` row, stored wrapped by the current
key-encryption key); the caller keeps the returned ciphertext string in its own record.
Decrypting is authorised and audited; deleting the data key shreds the secret.
"""

from __future__ import annotations

import dataclasses
import re
import uuid

import structlog
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError
from lumina.security.crypto import envelope, token
from lumina.security.crypto.envelope import AuthenticationFailedError
from lumina.security.crypto.keyring import current_keyring
from lumina.security.crypto.token import MalformedCiphertextError, SealedSecret
from lumina.security.events.crypto import (
    KeysRotated,
    SecretDecrypted,
    SecretDecryptionFailed,
    SecretEncrypted,
    SecretsForgotten,
)
from lumina.security.models.crypto import DataKey
from lumina.security.services.authorization import require
from lumina.security.types import Actor, Resource

logger = structlog.get_logger(__name__)

MAX_PLAINTEXT_BYTES = 64 * 1024
MAX_CIPHERTEXT_CHARS = token.max_length(MAX_PLAINTEXT_BYTES)
OWNER_MAX_LENGTH = 255
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")
ROTATION_BATCH_SIZE = 500

ENCRYPT_ACTION = "security.secrets.encrypt"
DECRYPT_ACTION = "security.secrets.decrypt"
KEYS_READ_ACTION = "security.keys.read"
KEYS_ROTATE_ACTION = "security.keys.rotate"
SECRET_RESOURCE = "security.secret"  # noqa: S105 (a resource type, not a secret)


class DecryptionError(ApplicationError):
    """The ciphertext cannot be decrypted for this owner. Deliberately says no more."""

    code = "decryption_failed"
    status = 400

    def __init__(self) -> None:
        super().__init__(
            "The ciphertext cannot be decrypted for this owner.",
            fields={"ciphertext": ["cannot be decrypted for this owner"]},
        )


@dataclasses.dataclass(frozen=True)
class RotationReport:
    """What a rotation run did. ``skipped`` rows were locked or deleted meanwhile."""

    kek_version: int
    total: int
    rewrapped: int
    already_current: int
    unavailable: int = 0
    unavailable_versions: tuple[int, ...] = ()
    failed: int = 0
    skipped: int = 0


class _OpenFailed(Exception):
    def __init__(self, reason: str, data_key_id: uuid.UUID | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data_key_id = data_key_id


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError("Invalid input.", fields={field: [message]}, code="invalid")


def owner_problem(owner: object) -> str | None:
    """Why ``owner`` is not a usable owner label, or None when it is."""
    if not isinstance(owner, str) or not owner:
        return "must be a non-empty string"
    if len(owner) > OWNER_MAX_LENGTH:
        return f"must be at most {OWNER_MAX_LENGTH} characters"
    if not OWNER_PATTERN.match(owner):
        return "may contain only letters, digits and _ . : / @ + - (no spaces)"
    return None


def plaintext_problem(plaintext: object) -> str | None:
    """Why ``plaintext`` cannot be encrypted, or None when it can. Never echoes the value."""
    if not isinstance(plaintext, str):
        return "must be a string"
    try:
        size = len(plaintext.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    if size > MAX_PLAINTEXT_BYTES:
        return f"must be at most {MAX_PLAINTEXT_BYTES} bytes (UTF-8)"
    return None


def _check_owner(owner: object) -> None:
    if problem := owner_problem(owner):
        raise _invalid("owner", problem)


def secret_resource(owner: str, actor: Actor) -> Resource:
    """What encrypt and decrypt are authorised against: the owner's secret."""
    return Resource(type=SECRET_RESOURCE, id=owner, attributes={"context": actor.context or ""})


def secret_encrypt(*, plaintext: str, owner: str, actor: Actor | None = None) -> str:
    """Seal ``plaintext`` for ``owner`` under a new data key; return the ciphertext string."""
    _check_owner(owner)
    if problem := plaintext_problem(plaintext):
        raise _invalid("plaintext", problem)
    keyring = current_keyring()
    data_key = envelope.new_data_key()
    row = DataKey(id=uuid.uuid4(), owner=owner, kek_version=keyring.current_version)
    row.wrapped_key = envelope.wrap_data_key(
        data_key, kek=keyring.current_key, kek_version=row.kek_version, data_key_id=row.id
    )
    nonce, sealed = envelope.seal(
        plaintext.encode("utf-8"), data_key=data_key, aad=envelope.secret_aad(row.id, owner)
    )
    with transaction.atomic():
        row.save(force_insert=True)
        publish(
            SecretEncrypted(
                owner=owner,
                data_key_id=row.id,
                kek_version=row.kek_version,
                actor_id=actor.user_id if actor else None,
                ip_address=actor.ip_address if actor else None,
            )
        )
    logger.info("secret encrypted", owner=owner, data_key_id=str(row.id))
    return token.encode(SealedSecret(data_key_id=row.id, nonce=nonce, ciphertext=sealed))


def _open(ciphertext: str, owner: str) -> tuple[str, uuid.UUID]:
    try:
        sealed = token.decode(ciphertext)
    except MalformedCiphertextError:
        raise _OpenFailed("malformed") from None
    row = DataKey.objects.filter(pk=sealed.data_key_id).first()
    if row is None:
        raise _OpenFailed("unknown_data_key", sealed.data_key_id)
    if row.owner != owner:
        raise _OpenFailed("owner_mismatch", row.id)
    keyring = current_keyring()
    if row.kek_version not in keyring:
        raise _OpenFailed("kek_unavailable", row.id)
    try:
        data_key = envelope.unwrap_data_key(
            bytes(row.wrapped_key),
            kek=keyring.key(row.kek_version),
            kek_version=row.kek_version,
            data_key_id=row.id,
        )
    except AuthenticationFailedError:
        raise _OpenFailed("unwrap_failed", row.id) from None
    try:
        plaintext = envelope.open_sealed(
            sealed.nonce,
            sealed.ciphertext,
            data_key=data_key,
            aad=envelope.secret_aad(row.id, owner),
        )
    except AuthenticationFailedError:
        raise _OpenFailed("authentication_failed", row.id) from None
    return plaintext.decode("utf-8"), row.id


def secret_decrypt(*, ciphertext: str, owner: str, actor: Actor) -> str:
    """Open a ciphertext made for ``owner``, if ``actor`` may decrypt that owner's secrets.

    A refusal or a failure is published as an event before the error is raised; when
    the caller's own transaction then rolls back, that event goes with it.
    """
    _check_owner(owner)
    if not isinstance(ciphertext, str) or len(ciphertext) > MAX_CIPHERTEXT_CHARS:
        raise _invalid("ciphertext", "is not a ciphertext made by Lumina")
    # Refusals are published as AccessDenied by require().
    require(actor, DECRYPT_ACTION, secret_resource(owner, actor))
    common = {"owner": owner, "actor_id": actor.user_id, "ip_address": actor.ip_address}
    try:
        plaintext, data_key_id = _open(ciphertext, owner)
    except _OpenFailed as failure:
        publish(
            SecretDecryptionFailed(reason=failure.reason, data_key_id=failure.data_key_id, **common)
        )
        logger.warning("secret decryption failed", owner=owner, reason=failure.reason)
        raise DecryptionError() from None
    publish(SecretDecrypted(data_key_id=data_key_id, **common))
    logger.info("secret decrypted", owner=owner, data_key_id=str(data_key_id))
    return plaintext


def secret_open(*, ciphertext: str, owner: str) -> str:
    """Open a secret the security context seals for its own use (MFA seeds).

    Not for other contexts' secrets: there is no actor to authorise, and a success is
    not audited, because the caller's own use of the secret is (``MfaVerified`` /
    ``MfaFailed``); auditing every code check twice would only flood the chain. A
    failure is audited and raises ``DecryptionError``.
    """
    _check_owner(owner)
    try:
        plaintext, _ = _open(ciphertext, owner)
    except _OpenFailed as failure:
        publish(
            SecretDecryptionFailed(
                owner=owner, reason=failure.reason, data_key_id=failure.data_key_id
            )
        )
        logger.warning("secret decryption failed", owner=owner, reason=failure.reason)
        raise DecryptionError() from None
    return plaintext


def secret_forget(*, owner: str, ciphertext: str | None = None, actor: Actor | None = None) -> int:
    """Delete ``owner``'s data keys (only the one behind ``ciphertext`` when given).

    Returns how many were deleted; their ciphertexts can never be decrypted again.
    """
    _check_owner(owner)
    keys = DataKey.objects.filter(owner=owner)
    if ciphertext is not None:
        try:
            keys = keys.filter(pk=token.decode(ciphertext).data_key_id)
        except MalformedCiphertextError:
            raise _invalid("ciphertext", "is not a ciphertext made by Lumina") from None
    with transaction.atomic():
        deleted, _ = keys.delete()
        if deleted:
            publish(
                SecretsForgotten(
                    owner=owner,
                    data_keys=deleted,
                    actor_id=actor.user_id if actor else None,
                    ip_address=actor.ip_address if actor else None,
                )
            )
    logger.info("secrets forgotten", owner=owner, data_keys=deleted)
    return deleted


def keys_rotate(
    *, batch_size: int = ROTATION_BATCH_SIZE, actor: Actor | None = None
) -> RotationReport:
    """Re-wrap every data key not under the newest KEK, online and idempotently.

    Works in short batches locked with SKIP LOCKED, so encryption and decryption carry on
    meanwhile (a key is readable under its old or its new wrapping at every moment) and
    two concurrent runs share the work. Keys wrapped by a KEK version missing from the
    keyring, or that no longer unwrap, are counted and left as they are.
    """
    keyring = current_keyring()
    current = keyring.current_version
    counts: dict[int, int] = dict(
        DataKey.objects.order_by().values_list("kek_version").annotate(n=Count("id"))
    )
    missing = tuple(sorted(v for v in counts if v != current and v not in keyring))
    stale = [v for v in counts if v != current and v in keyring]
    rewrapped = failed = 0
    last_id: uuid.UUID | None = None
    while stale:
        with transaction.atomic():
            rows = DataKey.objects.select_for_update(skip_locked=True).filter(kek_version__in=stale)
            if last_id is not None:
                rows = rows.filter(pk__gt=last_id)
            batch = list(rows.order_by("pk")[:batch_size])
            if not batch:
                break
            last_id = batch[-1].pk
            now = timezone.now()
            changed = []
            for row in batch:
                try:
                    data_key = envelope.unwrap_data_key(
                        bytes(row.wrapped_key),
                        kek=keyring.key(row.kek_version),
                        kek_version=row.kek_version,
                        data_key_id=row.id,
                    )
                except AuthenticationFailedError:
                    failed += 1
                    logger.warning("data key does not unwrap", data_key_id=str(row.id))
                    continue
                row.wrapped_key = envelope.wrap_data_key(
                    data_key, kek=keyring.current_key, kek_version=current, data_key_id=row.id
                )
                row.kek_version = current
                row.rotated_at = now
                changed.append(row)
            DataKey.objects.bulk_update(changed, ["wrapped_key", "kek_version", "rotated_at"])
            rewrapped += len(changed)
    stale_total = sum(counts[v] for v in stale)
    report = RotationReport(
        kek_version=current,
        total=sum(counts.values()),
        rewrapped=rewrapped,
        already_current=counts.get(current, 0),
        unavailable=sum(counts[v] for v in missing),
        unavailable_versions=missing,
        failed=failed,
        skipped=max(stale_total - rewrapped - failed, 0),
    )
    publish(
        KeysRotated(
            kek_version=current,
            total=report.total,
            rewrapped=rewrapped,
            already_current=report.already_current,
            unavailable=report.unavailable,
            failed=failed,
            actor_id=actor.user_id if actor else None,
            ip_address=actor.ip_address if actor else None,
        )
    )
    logger.info("keys rotated", **dataclasses.asdict(report))
    return report
