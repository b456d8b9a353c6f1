"""The admin console's second factor: OTP at login, enrolment when required, device pages."""

from __future__ import annotations

import base64
import re

import pytest
from django.core.cache import cache
from django.test import Client

from lumina.security.models.mfa import BackupCodesDevice, TotpDevice
from lumina.security.services import mfa as services
from tests.security.mfa_support import PASSWORD, code_for, enrolled_user, event_payloads, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _login(client: Client, email: str, **extra):
    return client.post(LOGIN, {"username": email, "password": PASSWORD, **extra})


def test_staff_with_a_device_must_give_a_code_to_log_in(settings):
    settings.LUMINA_REQUIRE_STAFF_MFA = False
    user, device = enrolled_user("ops@example.com", staff=True)
    client = Client()

    without_code = _login(client, user.email)
    assert without_code.status_code == 200
    assert "otp_token" in without_code.content.decode()
    assert client.get("/admin/").status_code == 302

    wrong = _login(client, user.email, otp_token="000000")
    assert wrong.status_code == 200
    assert client.get("/admin/").status_code == 302

    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the wrong code above must not hold this one back
    right = _login(client, user.email, otp_token=code_for(device))
    assert right.status_code == 302
    assert right["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_staff_with_a_device_may_log_in_with_a_backup_code(settings):
    user, _ = enrolled_user("backup@example.com", staff=True)
    codes = services.backup_codes_generate(user=user)
    client = Client()

    response = _login(client, user.email, otp_token=codes[3])

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert BackupCodesDevice.objects.get(user=user).codes.count() == 9


def test_a_password_only_session_of_staff_with_a_device_does_not_reach_the_admin():
    user, _ = enrolled_user("partial.ops@example.com", staff=True)
    client = Client()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_with_staff_mfa_off_staff_without_a_device_log_in_with_the_password(settings):
    settings.LUMINA_REQUIRE_STAFF_MFA = False
    user = make_user("dev@example.com", staff=True)
    client = Client()

    response = _login(client, user.email)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert not TotpDevice.objects.filter(user=user).exists()


def test_with_staff_mfa_required_staff_without_a_device_enrol_before_any_admin_page(
    settings, django_user_model
):
    settings.LUMINA_REQUIRE_STAFF_MFA = True
    user = django_user_model.objects.create_superuser("newops@example.com", PASSWORD)
    client = Client()

    assert _login(client, user.email)["Location"] == "/admin/"
    for page in ("/admin/", "/admin/security/user/", "/admin/login/"):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/mfa/enrol/")

    page = client.get("/admin/mfa/enrol/?next=/admin/security/user/")
    assert page.status_code == 200
    html = page.content.decode()
    qr = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(qr).startswith(b"\x89PNG\r\n\x1a\n")
    device = TotpDevice.objects.get(user=user, confirmed=False)
    # Reloading the page keeps the secret the user may already have scanned.
    client.get("/admin/mfa/enrol/")
    assert TotpDevice.objects.get(user=user).pk == device.pk

    wrong = client.post("/admin/mfa/enrol/", {"code": "000000", "next": "/admin/security/user/"})
    assert wrong.status_code == 200
    assert "errorlist" in wrong.content.decode()
    settings.OTP_TOTP_THROTTLE_FACTOR = 0

    done = client.post(
        "/admin/mfa/enrol/", {"code": code_for(device), "next": "/admin/security/user/"}
    )

    assert done.status_code == 302
    assert done["Location"] == "/admin/security/user/"
    assert client.get("/admin/security/user/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    assert event_payloads("security.MfaEnabled")[0]["user_id"] == str(user.pk)


def test_the_enrolment_page_refuses_an_offsite_next(settings):
    settings.LUMINA_REQUIRE_STAFF_MFA = True
    user = make_user("next@example.com", staff=True)
    client = Client()
    client.force_login(user)
    client.get("/admin/mfa/enrol/")
    device = TotpDevice.objects.get(user=user)

    done = client.post(
        "/admin/mfa/enrol/", {"code": code_for(device), "next": "https://evil.test/"}
    )

    assert done["Location"] == "/admin/"


def test_staff_who_must_enrol_can_log_out_instead(settings):
    settings.LUMINA_REQUIRE_STAFF_MFA = True
    user = make_user("leaving@example.com", staff=True)
    client = Client()
    client.force_login(user)

    response = client.post("/admin/mfa/enrol/", {"logout": "Log out"})

    assert response["Location"] == "/admin/login/"
    assert "_auth_user_id" not in client.session


def test_the_enrolment_page_is_for_staff_only():
    client = Client()
    client.force_login(make_user("user@example.com"))
    response = client.get("/admin/mfa/enrol/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert not TotpDevice.objects.exists()


def test_device_pages_show_who_has_what_but_never_a_secret(admin_user):
    user, device = enrolled_user("support.case@example.com")
    codes = services.backup_codes_generate(user=user)
    client = Client()
    client.force_login(admin_user)

    pages = [
        "/admin/security/totpdevice/",
        f"/admin/security/totpdevice/{device.pk}/change/",
        "/admin/security/backupcodesdevice/",
        f"/admin/security/backupcodesdevice/{BackupCodesDevice.objects.get(user=user).pk}/change/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert "support.case@example.com" in html
        assert device.bin_key.hex() not in html
        assert base64.b32encode(device.bin_key).decode() not in html
        assert "qrcode" not in html.lower()
        assert not any(code in html for code in codes)
    assert client.get("/admin/security/totpdevice/add/").status_code == 403


def test_the_admin_reset_action_removes_the_users_devices(admin_user):
    user, device = enrolled_user("reset.me@example.com")
    client = Client()
    client.force_login(admin_user)

    response = client.post(
        "/admin/security/totpdevice/",
        {"action": "reset_mfa", "_selected_action": [device.pk]},
    )

    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=user).exists()
    reset = event_payloads("security.MfaReset")
    assert [(e["user_id"], e["actor_id"]) for e in reset] == [(str(user.pk), str(admin_user.pk))]


def test_wrong_admin_codes_are_audited_and_lock_the_account(settings):
    settings.LUMINA_REQUIRE_STAFF_MFA = False
    settings.LUMINA_LOGIN_MAX_FAILURES = 2
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    user, device = enrolled_user("guessed@example.com", staff=True)
    client = Client()
    for _ in range(2):
        assert _login(client, user.email, otp_token="000000").status_code == 200
    failed = [p for p in event_payloads("security.MfaFailed") if p["user_id"] == str(user.pk)]
    assert len(failed) >= 2
    # Locked now: even the right code does not get in.
    assert _login(client, user.email, otp_token=code_for(device)).status_code == 200
    assert client.get("/admin/").status_code == 302
