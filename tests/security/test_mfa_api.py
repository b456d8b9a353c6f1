"""MFA over the REST API: TOTP enrolment, verification, backup codes, disabling, the CLI."""

from __future__ import annotations

import base64
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.models.mfa import BackupCodesDevice, TotpDevice
from lumina.security.services import mfa as services
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from tests.security.auth_support import steady_window
from tests.security.mfa_support import (
    BACKUP_CODES,
    CONFIRM,
    ENROL,
    MFA,
    PASSWORD,
    VERIFY,
    code_for,
    enrolled_user,
    error_of,
    event_payloads,
    make_user,
    session_client,
)

pytestmark = pytest.mark.django_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _fresh_counters():
    # Lockout and per-address counters live in the (per-process) cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_device_backoff(settings):
    """Turn off django-otp's per-device backoff, to test what sits on top of it."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def _verified_client(user, device):
    client = session_client(user)
    assert client.post(VERIFY, {"code": code_for(device)}, format="json").status_code == 200
    return client


# --- Enrolment ------------------------------------------------------------------------


def test_enrolment_returns_a_png_qr_code_and_a_provisioning_uri_for_an_unconfirmed_device():
    user = make_user("ada@example.com")
    response = session_client(user).post(ENROL)

    assert response.status_code == 201
    body = response.json()
    assert base64.b64decode(body["qr_png"]).startswith(PNG_MAGIC)
    uri = urlsplit(body["provisioning_uri"])
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    query = parse_qs(uri.query)
    assert query["issuer"] == ["Lumina"]
    device = TotpDevice.objects.get(user=user)
    assert not device.confirmed
    assert body["device_id"] == device.persistent_id
    secret = query["secret"][0]
    assert base64.b32decode(secret) == services.totp_open(device=device).bin_key
    assert response["Cache-Control"] == "no-store"


def test_enrolling_again_replaces_the_unconfirmed_device():
    user = make_user("grace@example.com")
    client = session_client(user)
    first = client.post(ENROL).json()
    second = client.post(ENROL).json()

    assert first["device_id"] != second["device_id"]
    assert TotpDevice.objects.filter(user=user).count() == 1
    assert TotpDevice.objects.get(user=user).persistent_id == second["device_id"]


def test_confirming_with_a_code_from_the_device_key_turns_mfa_on_and_verifies_the_session():
    user = make_user("linus@example.com")
    client = session_client(user)
    client.post(ENROL)
    device = TotpDevice.objects.get(user=user)

    response = client.post(CONFIRM, {"code": code_for(device)}, format="json")

    assert response.status_code == 200
    assert response.json()["enabled"] is True
    device.refresh_from_db()
    assert device.confirmed
    assert [e["user_id"] for e in event_payloads("security.MfaEnabled")] == [str(user.pk)]
    # The session that proved the device stays fully authenticated.
    assert client.get(MFA).status_code == 200


def test_confirming_with_a_wrong_code_is_a_400_naming_code_and_keeps_mfa_off():
    user = make_user("alan@example.com")
    client = session_client(user)
    client.post(ENROL)
    device = TotpDevice.objects.get(user=user)
    wrong = str((int(code_for(device)) + 1) % 1_000_000).zfill(6)

    error = error_of(client.post(CONFIRM, {"code": wrong}, format="json"), 400)

    assert error["code"] == "invalid_code"
    assert "code" in error["fields"]
    device.refresh_from_db()
    assert not device.confirmed
    assert [e["reason"] for e in event_payloads("security.MfaFailed")] == ["invalid_code"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "code"), ({"code": ""}, "code"), ({"code": "1" * 65}, "code"), ({"code": None}, "code")],
)
def test_confirm_rejects_bad_input_naming_the_field(body, field):
    user = make_user("barbara@example.com")
    client = session_client(user)
    client.post(ENROL)

    error = error_of(client.post(CONFIRM, body, format="json"), 400)

    assert field in error["fields"]


def test_confirming_without_an_enrolment_is_a_409():
    client = session_client(make_user("ken@example.com"))
    error = error_of(client.post(CONFIRM, {"code": "123456"}, format="json"), 409)
    assert error["code"] == "no_pending_enrolment"


def test_enrolling_while_mfa_is_on_is_a_409():
    user, device = enrolled_user("dennis@example.com")
    client = _verified_client(user, device)
    error = error_of(client.post(ENROL), 409)
    assert error["code"] == "mfa_already_enabled"
    assert TotpDevice.objects.filter(user=user).count() == 1


@pytest.mark.parametrize("path", [MFA, ENROL, CONFIRM, VERIFY, BACKUP_CODES])
def test_mfa_endpoints_need_a_login(path):
    response = APIClient().post(path, {"code": "123456"}, format="json")
    assert error_of(response, 403)["code"] == "not_authenticated"


def test_an_api_token_cannot_enrol_or_remove_mfa():
    user = make_user("token.holder@example.com")
    issued = token_create(user_id=user.pk, actor=Actor(user_id=user.pk))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")

    assert error_of(client.post(ENROL), 403)["code"] == "not_authenticated"
    assert error_of(client.delete(MFA, {"password": PASSWORD}, format="json"), 403)
    assert not TotpDevice.objects.filter(user=user).exists()


# --- Verification -----------------------------------------------------------------------


def test_a_partially_authenticated_session_is_refused_until_it_verifies():
    user, device = enrolled_user("margaret@example.com")
    client = session_client(user)

    error = error_of(client.get(MFA), 403)
    assert error["code"] == "mfa_required"
    assert client.get("/api/v1/auth/me").json()["mfa_verified"] is False

    response = client.post(VERIFY, {"code": code_for(device)}, format="json")

    assert response.status_code == 200
    assert response.json()["verified"] is True
    assert response.json()["device_type"] == "totp"
    assert client.get(MFA).status_code == 200
    assert client.get("/api/v1/auth/me").json()["mfa_verified"] is True
    verified = event_payloads("security.MfaVerified")
    assert [(e["user_id"], e["device_type"]) for e in verified] == [(str(user.pk), "totp")]


def test_verifying_gives_the_session_a_new_id():
    user, device = enrolled_user("session@example.com")
    client = session_client(user)
    before = client.cookies["sessionid"].value
    client.post(VERIFY, {"code": code_for(device)}, format="json")
    assert client.cookies["sessionid"].value != before


def test_a_replayed_totp_code_is_refused():
    user, device = enrolled_user("joan@example.com")
    code = code_for(device)
    assert session_client(user).post(VERIFY, {"code": code}, format="json").status_code == 200

    other_session = session_client(user)
    error = error_of(other_session.post(VERIFY, {"code": code}, format="json"), 400)

    assert error["code"] == "invalid_code"
    assert "code" in error["fields"]
    assert error_of(other_session.get(MFA), 403)["code"] == "mfa_required"
    assert [e["reason"] for e in event_payloads("security.MfaFailed")] == ["invalid_code"]


def test_a_wrong_code_is_a_400_and_is_audited(no_device_backoff):
    user, _ = enrolled_user("hedy@example.com")
    error = error_of(session_client(user).post(VERIFY, {"code": "000000"}, format="json"), 400)
    assert error["fields"] == {"code": [error["message"]]}
    failed = event_payloads("security.MfaFailed")
    assert [(e["user_id"], e["outcome"]) for e in failed] == [(str(user.pk), "failure")]


def test_quick_retries_after_a_wrong_code_are_held_back_by_the_device():
    user, device = enrolled_user("radia@example.com")
    client = session_client(user)
    error_of(client.post(VERIFY, {"code": "000000"}, format="json"), 400)

    error = error_of(client.post(VERIFY, {"code": code_for(device)}, format="json"), 429)

    assert error["code"] == "throttled"
    assert error_of(client.get(MFA), 403)["code"] == "mfa_required"


def test_too_many_wrong_codes_lock_the_account(settings, no_device_backoff):
    settings.LUMINA_LOGIN_MAX_FAILURES = 3
    user, device = enrolled_user("frances@example.com")
    client = session_client(user)
    for _ in range(3):
        error_of(client.post(VERIFY, {"code": "000000"}, format="json"), 400)

    response = client.post(VERIFY, {"code": code_for(device)}, format="json")

    error = error_of(response, 429)
    assert error["code"] == "account_locked"
    assert int(response["Retry-After"]) > 0
    locked = event_payloads("security.AccountLocked")
    assert [(e["user_id"], e["scope"]) for e in locked] == [(str(user.pk), "mfa")]


def test_verification_is_limited_per_client_address(settings, no_device_backoff):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"mfa": "2/min"},
    }
    user, _ = enrolled_user("katherine@example.com")
    client = session_client(user)
    steady_window()
    for _ in range(2):
        error_of(client.post(VERIFY, {"code": "000000"}, format="json"), 400)

    response = client.post(VERIFY, {"code": "000000"}, format="json")

    assert error_of(response, 429)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_verifying_without_mfa_is_a_409():
    client = session_client(make_user("nomfa@example.com"))
    assert error_of(client.post(VERIFY, {"code": "123456"}, format="json"), 409)["code"] == (
        "mfa_not_enabled"
    )


# --- Backup codes -----------------------------------------------------------------------


def test_backup_codes_are_ten_single_use_codes(no_device_backoff):
    user, device = enrolled_user("barbara.l@example.com")
    response = _verified_client(user, device).post(BACKUP_CODES)

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    codes = response.json()["codes"]
    assert len(codes) == len(set(codes)) == 10
    assert event_payloads("security.MfaBackupCodesGenerated")[0]["count"] == 10

    first = session_client(user)
    used = first.post(VERIFY, {"code": codes[0].upper()}, format="json")
    assert used.status_code == 200
    assert used.json()["device_type"] == "backup_codes"
    assert used.json()["backup_codes_remaining"] == 9
    assert first.get(MFA).status_code == 200

    again = session_client(user).post(VERIFY, {"code": codes[0]}, format="json")
    assert error_of(again, 400)["code"] == "invalid_code"


def test_new_backup_codes_replace_the_old_ones(no_device_backoff):
    user, device = enrolled_user("adele@example.com")
    client = _verified_client(user, device)
    old = client.post(BACKUP_CODES).json()["codes"]
    new = client.post(BACKUP_CODES).json()["codes"]

    assert not set(old) & set(new)
    assert BackupCodesDevice.objects.filter(user=user).count() == 1
    error_of(session_client(user).post(VERIFY, {"code": old[0]}, format="json"), 400)
    assert session_client(user).post(VERIFY, {"code": new[0]}, format="json").status_code == 200


def test_backup_codes_need_an_authenticator_app_first():
    client = session_client(make_user("edsger@example.com"))
    assert error_of(client.post(BACKUP_CODES), 409)["code"] == "mfa_not_enabled"


def test_a_partial_session_cannot_make_backup_codes_or_enrol():
    user, _ = enrolled_user("partial@example.com")
    client = session_client(user)
    assert error_of(client.post(BACKUP_CODES), 403)["code"] == "mfa_required"
    assert error_of(client.post(ENROL), 403)["code"] == "mfa_required"
    assert not BackupCodesDevice.objects.filter(user=user).exists()


# --- Status and disabling ------------------------------------------------------------


def test_status_lists_devices_and_remaining_codes_without_secrets():
    user, device = enrolled_user("status@example.com")
    client = _verified_client(user, device)
    codes = client.post(BACKUP_CODES).json()["codes"]

    response = client.get(MFA)

    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is True
    assert body["backup_codes_remaining"] == 10
    assert sorted(d["type"] for d in body["devices"]) == ["backup_codes", "totp"]
    text = response.content.decode()
    assert device.bin_key.hex() not in text
    assert base64.b32encode(device.bin_key).decode() not in text
    assert not any(code in text for code in codes)


def test_disabling_needs_the_right_password():
    user, device = enrolled_user("tim@example.com")
    client = _verified_client(user, device)
    client.post(BACKUP_CODES)

    wrong = client.delete(MFA, {"password": "not the password"}, format="json")

    assert error_of(wrong, 400)["fields"].keys() == {"password"}
    assert "not the password" not in wrong.content.decode()
    assert TotpDevice.objects.filter(user=user).exists()
    assert [e["outcome"] for e in event_payloads("security.MfaDisableRefused")] == ["denied"]

    assert client.delete(MFA, {"password": PASSWORD}, format="json").status_code == 204
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not BackupCodesDevice.objects.filter(user=user).exists()
    assert event_payloads("security.MfaDisabled")[0]["devices_removed"] == 2
    # Without a device the session needs no second factor any more.
    assert client.get(MFA).json()["enabled"] is False


def test_disabling_without_a_password_is_a_400_naming_password():
    user, device = enrolled_user("nopw@example.com")
    error = error_of(_verified_client(user, device).delete(MFA, {}, format="json"), 400)
    assert "password" in error["fields"]


def test_a_partial_session_cannot_disable_mfa():
    user, _ = enrolled_user("thief@example.com")
    error_of(session_client(user).delete(MFA, {"password": PASSWORD}, format="json"), 403)
    assert TotpDevice.objects.filter(user=user).exists()


# --- Secrets stay out of logs, events and later answers ----------------------------------


def test_no_totp_secret_or_code_reaches_logs_or_events(caplog):
    caplog.set_level(logging.DEBUG)
    user = make_user("secretive@example.com")
    client = session_client(user)
    client.post(ENROL)
    device = TotpDevice.objects.get(user=user)
    confirm_code = code_for(device, offset_steps=-1)
    client.post(CONFIRM, {"code": confirm_code}, format="json")
    verify_code = code_for(device)
    verify = session_client(user).post(VERIFY, {"code": verify_code}, format="json")
    codes = client.post(BACKUP_CODES).json()["codes"]
    session_client(user).post(VERIFY, {"code": codes[0]}, format="json")

    secrets = [device.bin_key.hex(), base64.b32encode(device.bin_key).decode(), *codes]
    recorded = caplog.text + str(list(OutboxEvent.objects.values_list("payload", flat=True)))
    for secret in secrets:
        assert secret not in recorded
    for code in (confirm_code, verify_code):
        assert f'"{code}"' not in str(list(OutboxEvent.objects.values_list("payload", flat=True)))
        assert code not in caplog.text
        assert code not in verify.content.decode()


# --- CLI --------------------------------------------------------------------------------


def test_mfa_reset_command_removes_the_users_devices(capsys):
    user, device = enrolled_user("lost.phone@example.com")
    _verified_client(user, device).post(BACKUP_CODES)

    call_command("security", "mfa", "reset", "LOST.phone@example.com")

    assert "removed 2 MFA device(s)" in capsys.readouterr().out
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not BackupCodesDevice.objects.filter(user=user).exists()
    assert event_payloads("security.MfaReset")[0]["user_id"] == str(user.pk)
    # The next password login needs no second factor.
    assert session_client(user).get(MFA).status_code == 200


def test_mfa_reset_command_names_an_unknown_user():
    with pytest.raises(CommandError, match=r"nobody@example\.com"):
        call_command("security", "mfa", "reset", "nobody@example.com")
