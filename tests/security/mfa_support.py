"""Helpers for the MFA and OIDC login tests: users with devices, codes, error shapes."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django_otp.oath import TOTP
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.models.mfa import TotpDevice
from lumina.security.services import mfa as services

PASSWORD = "a long passphrase 42"
MFA = "/api/v1/auth/mfa"
ENROL = f"{MFA}/totp"
CONFIRM = f"{MFA}/totp/confirm"
VERIFY = f"{MFA}/verify"
BACKUP_CODES = f"{MFA}/backup-codes"


def make_user(email: str, *, staff: bool = False, password: str = PASSWORD):
    return get_user_model().objects.create_user(email, password, is_staff=staff)


def code_for(device: TotpDevice, *, offset_steps: int = 0) -> str:
    """The code an authenticator app shows now (or ``offset_steps`` steps away)."""
    device.refresh_from_db()
    services.totp_open(device=device)
    generator = TOTP(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    generator.time = time.time() + offset_steps * device.step
    return str(generator.token()).zfill(device.digits)


def enrolled_user(email: str, *, staff: bool = False) -> tuple:
    """A user with a confirmed authenticator app; returns (user, device)."""
    user = make_user(email, staff=staff)
    device = services.totp_enrol(user=user).device
    # Confirm with the previous step's code, so a test may still use the current one.
    services.totp_confirm(user=user, code=code_for(device, offset_steps=-1))
    device.refresh_from_db()
    return user, device


def session_client(user) -> APIClient:
    """A session logged in with the password only (partial if the user has a device)."""
    client = APIClient()
    client.force_login(user)
    return client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def event_payloads(name: str) -> list[dict]:
    rows = OutboxEvent.objects.filter(name=name).order_by("created_at", "id")
    return [row.payload for row in rows]
