"""Read queries for multi-factor authentication: a user's devices, never their secrets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from django_otp import devices_for_user
from django_otp.models import Device

from lumina.security.models.mfa import BackupCode, BackupCodesDevice, TotpDevice
from lumina.security.models.users import User

DEVICE_TYPES: dict[type[Device], str] = {TotpDevice: "totp", BackupCodesDevice: "backup_codes"}


@dataclasses.dataclass(frozen=True)
class MfaDevice:
    id: str
    type: str
    name: str
    confirmed: bool
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class MfaStatus:
    user_id: uuid.UUID
    # True while any confirmed device makes logins ask for a second factor.
    enabled: bool
    devices: tuple[MfaDevice, ...]
    backup_codes_remaining: int


def device_type(device: Device) -> str:
    return DEVICE_TYPES[type(device)]


def mfa_device_list(*, user: User) -> list[Device]:
    """Every device of ``user``, confirmed or not."""
    return list(devices_for_user(user, confirmed=None))


def user_has_confirmed_device(*, user: User) -> bool:
    return any(model.objects.filter(user=user, confirmed=True).exists() for model in DEVICE_TYPES)


def totp_device_confirmed(*, user: User) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def totp_device_pending(*, user: User) -> TotpDevice | None:
    """The authenticator app being enrolled, not yet confirmed with a first code."""
    return TotpDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()


def backup_device(*, user: User) -> BackupCodesDevice | None:
    return BackupCodesDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def mfa_status_get(*, user: User) -> MfaStatus:
    devices = mfa_device_list(user=user)
    return MfaStatus(
        user_id=user.pk,
        enabled=any(d.confirmed for d in devices),
        devices=tuple(
            MfaDevice(
                id=d.persistent_id,
                type=device_type(d),
                name=d.name,
                confirmed=d.confirmed,
                created_at=d.created_at,
                last_used_at=d.last_used_at,
            )
            for d in devices
        ),
        backup_codes_remaining=BackupCode.objects.filter(
            device__user=user, device__confirmed=True
        ).count(),
    )
