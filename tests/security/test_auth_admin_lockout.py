"""The admin console's login shares the REST login's lockout and audit trail."""

import pytest
from django.contrib.auth import authenticate

from lumina.kernel.models import OutboxEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        "staffer@example.com", "the right passphrase", is_staff=True
    )


def _admin_login(client, password):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "staffer@example.com", "password": password},
        REMOTE_ADDR="203.0.113.9",
    )


def test_guessing_on_the_admin_page_locks_the_account(client, staff, settings):
    settings.LUMINA_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        assert _admin_login(client, "a wrong guess").status_code == 200  # form re-shown

    refused = _admin_login(client, "the right passphrase")
    assert refused.status_code == 200
    assert "_auth_user_id" not in client.session
    staff.refresh_from_db()
    assert staff.locked_until is not None

    failures = OutboxEvent.objects.filter(name="security.LoginFailed")
    assert failures.count() == 4
    assert failures.filter(payload__reason="account_locked").count() == 1
    assert all("the right passphrase" not in str(e.payload) for e in failures)


def test_admin_login_with_the_right_password_is_audited(client, staff):
    response = _admin_login(client, "the right passphrase")
    assert response.status_code == 302
    assert OutboxEvent.objects.filter(name="security.LoginSucceeded").count() == 1


def test_django_authenticate_refuses_a_locked_account(staff, settings):
    settings.LUMINA_LOGIN_MAX_FAILURES = 1
    assert authenticate(username="staffer@example.com", password="nope") is None
    assert authenticate(username="staffer@example.com", password="the right passphrase") is None
