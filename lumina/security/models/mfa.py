"""MFA devices, built on django-otp's abstract ``Device``: nothing readable at rest.

``TotpDevice`` keeps its seed only sealed by envelope encryption (``sealed_key``, bound to
the device row); the service opens it for the moment a code is checked or the QR code
shown and hands it to the instance with ``with_key``. ``BackupCodesDevice`` keeps only
Argon2id digests of its codes: a code only ever needs checking, never reading back.
The ADR "MFA secrets at rest" explains the choice.
"""

from __future__ import annotations

import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from lumina.security.crypto import lookup

TOTP_KEY_BYTES = 20  # 160 bits, as RFC 4226 recommends and django-otp generates


def totp_key_owner(device_id: int) -> str:
    """The owner label a device's seed is sealed for: it opens for this row only."""
    return f"security.TotpDevice:{device_id}:key"


class SealedKeyError(RuntimeError):
    """The seed was needed but the service has not opened it for this instance."""


class TotpDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238: HMAC-SHA1, ``digits`` digits, ``step`` seconds)."""

    sealed_key = models.TextField(
        editable=False, help_text="The seed, sealed by envelope encryption for this device."
    )
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(
        default=1, help_text="Time steps accepted either side of the current one."
    )
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(
        default=-1, help_text="Time step of the last accepted code; only later ones pass."
    )

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    _key: bytes | None = None

    def with_key(self, key: bytes) -> TotpDevice:
        """Give this instance its opened seed (kept in memory only, never saved)."""
        self._key = key
        return self

    @property
    def key_is_open(self) -> bool:
        return self._key is not None

    @property
    def bin_key(self) -> bytes:
        if self._key is None:
            raise SealedKeyError("the device's seed has not been opened")
        return self._key

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def verify_token(self, token) -> bool:
        """django-otp's TOTP check: a time step is accepted once, later ones only."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            value = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(value, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    @property
    def config_url(self) -> str:
        """The otpauth:// URI authenticator apps scan (Google's Key Uri Format)."""
        label = str(self.user.get_username())
        params = {
            "secret": b32encode(self.bin_key),
            "algorithm": "SHA1",
            "digits": self.digits,
            "period": self.step,
        }
        query = urlencode(params)
        issuer = getattr(settings, "OTP_TOTP_ISSUER", None)
        if isinstance(issuer, str) and issuer:
            issuer = issuer.replace(":", "")
            label = f"{issuer}:{label}"
            query += f"&issuer={quote(issuer)}"
        return f"otpauth://totp/{quote(label)}?{query}"


class BackupCodesDevice(TimestampMixin, ThrottlingMixin, Device):
    """Single-use backup codes, stored as Argon2id digests under one salt per device."""

    salt = models.BinaryField(max_length=lookup.SALT_BYTES, editable=False)
    hash_params = models.CharField(max_length=100, default=lookup.DEFAULT_PARAMS, editable=False)

    class Meta(Device.Meta):
        verbose_name = "backup codes"
        verbose_name_plural = "backup codes"

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1)

    def code_digest(self, code: str) -> str:
        return lookup.digest(code, salt=bytes(self.salt), params=self.hash_params)

    def verify_token(self, token) -> bool:
        """Accept a code whose digest is stored, and delete it: each code works once."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        deleted = 0
        if isinstance(token, str) and token:
            deleted, _ = self.codes.filter(digest=self.code_digest(token)).delete()
        if deleted:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
        else:
            self.throttle_increment(commit=True)
        return bool(deleted)


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodesDevice, related_name="codes", on_delete=models.CASCADE)
    digest = models.CharField(max_length=2 * lookup.DIGEST_BYTES)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "digest"], name="backupcode_unique_digest"),
        ]

    def __str__(self) -> str:
        return f"backup code of device {self.device_id}"
