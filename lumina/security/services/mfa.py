"""Multi-factor authentication use-cases: TOTP enrolment, verification, backup codes, removal.

Devices are security's own django-otp devices (``models/mfa.py``): a TOTP seed is
sealed by envelope encryption for its device and opened here only to check a code or
draw the QR code; backup codes are stored as Argon2id digests. Codes, keys and backup
codes are never logged nor put in events; only the enrolment answer carries the
provisioning URI and QR code, and only the generating call returns backup codes.
"""

from __future__ import annotations

import dataclasses
import io
import os
import uuid
from base64 import b32encode

from django.db import transaction
from django_otp.models import Device

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, ConflictError
from lumina.security.crypto import lookup
from lumina.security.events.mfa import (
    MfaBackupCodesGenerated,
    MfaDisabled,
    MfaDisableRefused,
    MfaEnabled,
    MfaFailed,
    MfaReset,
    MfaVerified,
)
from lumina.security.models.mfa import (
    TOTP_KEY_BYTES,
    BackupCode,
    BackupCodesDevice,
    TotpDevice,
    totp_key_owner,
)
from lumina.security.models.users import User
from lumina.security.selectors.mfa import (
    backup_device,
    device_type,
    mfa_device_list,
    totp_device_confirmed,
    totp_device_pending,
    user_has_confirmed_device,
)
from lumina.security.services.auth import AccountLockedError, attempt_guard
from lumina.security.services.crypto import (
    DecryptionError,
    secret_encrypt,
    secret_forget,
    secret_open,
)

TOTP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
BACKUP_CODE_COUNT = 10


class InvalidCodeError(ApplicationError):
    code = "invalid_code"

    def __init__(self, message: str = "The code is wrong, expired or already used.") -> None:
        super().__init__(message, fields={"code": [message]})


class MfaThrottledError(ApplicationError):
    """Too many wrong codes in a row: the device refuses codes for a while."""

    code = "throttled"
    status = 429


@dataclasses.dataclass(frozen=True)
class TotpEnrolment:
    device: TotpDevice
    provisioning_uri: str
    qr_png: bytes


def normalize_code(code: str) -> str:
    """Codes are typed by people: ignore spaces and dashes, and case for backup codes."""
    return "".join(code.split()).replace("-", "").lower()


def new_backup_code() -> str:
    """Eight base32 characters (40 random bits), as django-otp's static tokens."""
    return b32encode(os.urandom(5)).decode("ascii").lower()


def totp_seal(*, device: TotpDevice, key: bytes) -> None:
    """Seal ``key`` for the (saved) ``device`` and store only the ciphertext."""
    device.sealed_key = secret_encrypt(plaintext=key.hex(), owner=totp_key_owner(device.pk))
    device.save(update_fields=["sealed_key"])
    device.with_key(key)


def totp_open(*, device: TotpDevice) -> TotpDevice:
    """Open the device's sealed seed into the instance (memory only) and return it."""
    hex_key = secret_open(ciphertext=device.sealed_key, owner=totp_key_owner(device.pk))
    return device.with_key(bytes.fromhex(hex_key))


def totp_provisioning(*, device: TotpDevice) -> TotpEnrolment:
    """The otpauth:// URI for authenticator apps and the same URI as a PNG QR code."""
    if not device.key_is_open:
        totp_open(device=device)
    uri = device.config_url
    import segno  # only for enrolment: not loaded by every process

    png = io.BytesIO()
    segno.make(uri, error="m").save(png, kind="png", scale=5, border=4)
    return TotpEnrolment(device=device, provisioning_uri=uri, qr_png=png.getvalue())


def totp_enrol(*, user: User) -> TotpEnrolment:
    """Start enrolling an authenticator app; an earlier unconfirmed one is replaced."""
    with transaction.atomic():
        if totp_device_confirmed(user=user) is not None:
            raise ConflictError(
                "An authenticator app is already set up; turn MFA off first to replace it.",
                code="mfa_already_enabled",
            )
        _delete_devices(devices=list(TotpDevice.objects.filter(user=user, confirmed=False)))
        device = TotpDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
        totp_seal(device=device, key=os.urandom(TOTP_KEY_BYTES))
    return totp_provisioning(device=device)


def totp_confirm(*, user: User, code: str, ip_address: str | None = None) -> TotpDevice:
    """Confirm the pending authenticator app with its first code; MFA is on from then."""
    device = totp_device_pending(user=user)
    if device is None:
        raise ConflictError(
            "There is no authenticator app waiting for confirmation; start enrolment first.",
            code="no_pending_enrolment",
        )
    _verify(user=user, device=device, code=code, ip_address=ip_address)
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        publish(
            MfaEnabled(
                user_id=user.pk,
                device_type="totp",
                actor_id=user.pk,
                ip_address=ip_address,
            )
        )
    return device


def mfa_verify(*, user: User, code: str, ip_address: str | None = None) -> Device:
    """Check a second-factor code (TOTP or backup code); return the device that accepted it.

    A TOTP code is accepted once: django-otp records its time step (``last_t``) and
    refuses that step and earlier ones afterwards. A backup code is deleted when used.
    Wrong codes count towards the account lockout (``AccountLockedError``) like wrong
    passwords do, on top of django-otp's own per-device backoff.
    """
    if not user_has_confirmed_device(user=user):
        raise ConflictError("MFA is not enabled for this account.", code="mfa_not_enabled")
    guard = attempt_guard(scope="mfa", email=user.email, user=user, ip_address=ip_address)
    try:
        guard.check()
    except AccountLockedError:
        _fail(user=user, reason="account_locked", ip_address=ip_address)
        raise
    device = device_for_code(user=user, code=normalize_code(code))
    try:
        if device is None:
            _fail(user=user, reason="invalid_code", ip_address=ip_address)
            raise InvalidCodeError()
        _verify(user=user, device=device, code=code, ip_address=ip_address)
    except InvalidCodeError:
        guard.record_failure()
        raise
    guard.record_success()
    publish(
        MfaVerified(
            user_id=user.pk,
            device_type=device_type(device),
            actor_id=user.pk,
            ip_address=ip_address,
        )
    )
    return device


def backup_codes_generate(*, user: User, ip_address: str | None = None) -> list[str]:
    """Make ``BACKUP_CODE_COUNT`` new single-use codes, replacing any earlier ones.

    The plain codes are returned once, for the caller to show; they are not kept
    anywhere else the user can read them again.
    """
    if totp_device_confirmed(user=user) is None:
        raise ConflictError(
            "Set up an authenticator app before creating backup codes.",
            code="mfa_not_enabled",
        )
    codes = [new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
    # A fresh salt for every set: digests of earlier sets say nothing about this one. The
    # hashing (tens of milliseconds a code) happens before any row is locked.
    salt, params = lookup.new_salt(), lookup.DEFAULT_PARAMS
    digests = [lookup.digest(code, salt=salt, params=params) for code in codes]
    with transaction.atomic():
        device = backup_device(user=user)
        if device is None:
            device = BackupCodesDevice(user=user, name=BACKUP_DEVICE_NAME)
        device.salt, device.hash_params = salt, params
        device.save()
        device.codes.all().delete()
        BackupCode.objects.bulk_create(BackupCode(device=device, digest=d) for d in digests)
        publish(
            MfaBackupCodesGenerated(
                user_id=user.pk, count=len(codes), actor_id=user.pk, ip_address=ip_address
            )
        )
    return codes


def mfa_disable(*, user: User, password: str, ip_address: str | None = None) -> int:
    """Remove every device of ``user`` once they re-enter their password; return how many.

    Wrong passwords here count towards the account lockout like wrong sign-in passwords.
    """
    guard = attempt_guard(scope="login", email=user.email, user=user, ip_address=ip_address)
    guard.check()
    if not user.check_password(password):
        publish(MfaDisableRefused(user_id=user.pk, actor_id=user.pk, ip_address=ip_address))
        guard.record_failure()
        message = "The password is not correct."
        raise ApplicationError(message, fields={"password": [message]}, code="invalid_password")
    guard.record_success()
    with transaction.atomic():
        removed = _delete_devices(user=user)
        publish(
            MfaDisabled(
                user_id=user.pk, devices_removed=removed, actor_id=user.pk, ip_address=ip_address
            )
        )
    return removed


def mfa_reset(*, user: User, actor_id: uuid.UUID | None = None) -> int:
    """Support's way back in for a user who lost their devices: remove them all."""
    with transaction.atomic():
        removed = _delete_devices(user=user)
        publish(MfaReset(user_id=user.pk, devices_removed=removed, actor_id=actor_id))
    return removed


def _delete_devices(*, user: User | None = None, devices: list[Device] | None = None) -> int:
    """Delete devices (``user``'s, or those given) and shred their sealed seeds."""
    if devices is None:
        devices = mfa_device_list(user=user)
    for device in devices:
        if isinstance(device, TotpDevice):
            secret_forget(owner=totp_key_owner(device.pk))
        device.delete()
    return len(devices)


def device_for_code(*, user: User, code: str) -> Device | None:
    """The one device a (normalized) code is for: the app for digits, else backup codes."""
    # Try the one device the code's shape points at: trying every device would count a
    # failure against each of the others and throttle them too.
    totp = totp_device_confirmed(user=user)
    if totp is not None and code.isdigit() and len(code) == totp.digits:
        return totp
    return backup_device(user=user)


def _verify(*, user: User, device: Device, code: str, ip_address: str | None) -> None:
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        _fail(user=user, reason="throttled", ip_address=ip_address)
        raise MfaThrottledError("Too many wrong codes; wait a moment and try again.")
    if not _verify_locked(user=user, device=device, code=normalize_code(code)):
        _fail(user=user, reason="invalid_code", ip_address=ip_address)
        raise InvalidCodeError()


def _verify_locked(*, user: User, device: Device, code: str) -> bool:
    """django_otp.verify_token, opening the seed: the row is locked so two requests
    cannot both use one code (or one time step)."""
    with transaction.atomic():
        locked = (
            type(device).objects.select_for_update().filter(pk=device.pk, user_id=user.pk).first()
        )
        if locked is None:
            return False
        if isinstance(locked, TotpDevice):
            try:
                totp_open(device=locked)
            except DecryptionError:
                # Audited as SecretDecryptionFailed; to the caller it is a wrong code.
                return False
        return locked.verify_token(code)


def _fail(*, user: User, reason: str, ip_address: str | None) -> None:
    publish(MfaFailed(user_id=user.pk, reason=reason, actor_id=user.pk, ip_address=ip_address))
