"""Browser sessions: idle timeout and maximum age, a user's list of sessions, revocation of
one's own sessions, and administrators ending anyone's through ``authorize``."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from lumina.security.models.audit import AuditEntry
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.sessions import Session
from tests.security.auth_support import (
    ME,
    PASSWORD,
    browser,
    error_of,
    login,
    reset_caches,
)

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/auth/sessions"
REVOKE_OTHERS = f"{SESSIONS}/revoke-others"
ALL_SESSIONS = "/api/v1/sessions"


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", PASSWORD)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob@example.com", PASSWORD)


def signed_in(email: str, *, agent: str = "Firefox/140", address: str = "192.0.2.10"):
    client = browser()
    client.defaults.update(HTTP_USER_AGENT=agent, REMOTE_ADDR=address)
    assert login(client, email).status_code == 200
    return client


def unsafe(client, method: str, path: str, data=None):
    """A browser's unsafe request: with the CSRF token."""
    return getattr(client, method)(
        path, data, format="json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )


def my_sessions(client) -> list[dict]:
    response = client.get(SESSIONS)
    assert response.status_code == 200, response.content
    return response.json()


# --- Idle timeout and maximum age --------------------------------------------------------


def test_a_session_left_idle_past_the_timeout_is_refused(ada, settings):
    settings.LUMINA_SESSION_IDLE_TIMEOUT = 1800
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client = signed_in(ada.email)
        clock.move_to(start + dt.timedelta(seconds=1790))
        assert client.get(ME).status_code == 200  # guard: alive just before the timeout
        clock.move_to(start + dt.timedelta(seconds=1790 + 1801))

        assert client.get(ME).status_code == 401


def test_activity_keeps_a_session_alive_only_until_its_maximum_age(ada, settings):
    settings.LUMINA_SESSION_IDLE_TIMEOUT = 1800
    settings.LUMINA_SESSION_MAX_AGE = 3600
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client = signed_in(ada.email)
        for minutes in (25, 50, 59):  # each request well within the idle timeout
            clock.move_to(start + dt.timedelta(minutes=minutes))
            assert client.get(ME).status_code == 200, minutes
        clock.move_to(start + dt.timedelta(minutes=61))

        assert client.get(ME).status_code == 401


def test_the_row_expires_at_the_earlier_of_idle_timeout_and_maximum_age(ada, settings):
    settings.LUMINA_SESSION_IDLE_TIMEOUT = 1800
    settings.LUMINA_SESSION_MAX_AGE = 3600
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        client = signed_in(ada.email)
        session = Session.objects.get(user=ada)
        assert session.authenticated_at == start
        assert session.expire_date == start + dt.timedelta(seconds=1800)

        clock.move_to(start + dt.timedelta(seconds=1500))
        client.get(ME)
        assert Session.objects.get(user=ada).expire_date == start + dt.timedelta(seconds=3300)

        clock.move_to(start + dt.timedelta(seconds=3000))
        client.get(ME)
        assert Session.objects.get(user=ada).expire_date == start + dt.timedelta(seconds=3600)


def test_signing_in_again_starts_a_new_maximum_age(ada, settings):
    settings.LUMINA_SESSION_MAX_AGE = 3600
    settings.LUMINA_SESSION_IDLE_TIMEOUT = 3600
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client = signed_in(ada.email)
        clock.move_to(start + dt.timedelta(minutes=50))
        assert login(client, ada.email).status_code == 200
        clock.move_to(start + dt.timedelta(minutes=70))

        assert client.get(ME).status_code == 200


# --- My sessions ---------------------------------------------------------------------------


def test_i_see_my_sessions_with_agent_address_and_times_but_never_their_keys(ada, bob):
    laptop = signed_in(ada.email, agent="Firefox/140 (laptop)", address="192.0.2.10")
    signed_in(ada.email, agent="Safari/19 (phone)", address="198.51.100.20")
    signed_in(bob.email)

    sessions = my_sessions(laptop)

    assert len(sessions) == 2
    by_agent = {s["user_agent"]: s for s in sessions}
    assert set(by_agent) == {"Firefox/140 (laptop)", "Safari/19 (phone)"}
    assert by_agent["Firefox/140 (laptop)"]["current"] is True
    assert by_agent["Safari/19 (phone)"]["current"] is False
    assert by_agent["Safari/19 (phone)"]["ip_address"] == "198.51.100.20"
    for session in sessions:
        assert session["authenticated_at"]
        assert session["last_seen_at"]
        assert session["expires_at"]
    keys = list(Session.objects.filter(user=ada).values_list("session_key", flat=True))
    assert len(keys) == 2  # guard: the keys exist to be leaked
    text = laptop.get(SESSIONS).content.decode()
    assert not any(key in text for key in keys)


def test_revoking_one_of_my_sessions_signs_that_browser_out(
    ada, django_capture_on_commit_callbacks
):
    laptop = signed_in(ada.email, agent="laptop")
    phone = signed_in(ada.email, agent="phone")
    (phone_session,) = [s for s in my_sessions(laptop) if s["user_agent"] == "phone"]
    assert phone.get(ME).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = unsafe(laptop, "delete", f"{SESSIONS}/{phone_session['id']}")

    assert response.status_code == 204
    assert phone.get(ME).status_code == 401
    assert laptop.get(ME).status_code == 200
    entry = AuditEntry.objects.get(action="security.SessionsEnded")
    assert entry.details["reason"] == "revoked"
    assert entry.details["session_ids"] == [phone_session["id"]]


def test_revoking_my_current_session_signs_me_out(ada):
    client = signed_in(ada.email)
    (current,) = my_sessions(client)

    assert unsafe(client, "delete", f"{SESSIONS}/{current['id']}").status_code == 204

    assert client.get(ME).status_code == 401
    assert not Session.objects.filter(user=ada).exists()


def test_revoking_my_other_sessions_keeps_this_one(ada):
    here = signed_in(ada.email)
    others = [signed_in(ada.email) for _ in range(2)]

    response = unsafe(here, "post", REVOKE_OTHERS)

    assert response.json() == {"revoked": 2}
    assert here.get(ME).status_code == 200
    assert [other.get(ME).status_code for other in others] == [401, 401]


def test_another_user_cannot_see_or_revoke_my_sessions(ada, bob):
    mine = signed_in(ada.email)
    (my_session,) = my_sessions(mine)
    intruder = signed_in(bob.email)

    assert [s["id"] for s in my_sessions(intruder)] != [my_session["id"]]
    assert my_session["id"] not in {s["id"] for s in my_sessions(intruder)}
    response = unsafe(intruder, "delete", f"{SESSIONS}/{my_session['id']}")
    assert error_of(response, 404)["code"] == "not_found"
    assert error_of(intruder.get(ALL_SESSIONS), 403)["code"] == "permission_denied"
    response = unsafe(intruder, "delete", f"{ALL_SESSIONS}/{my_session['id']}")
    assert error_of(response, 403)["code"] == "permission_denied"
    response = unsafe(intruder, "post", f"{ALL_SESSIONS}/revoke", {"user_id": str(ada.pk)})
    assert error_of(response, 403)["code"] == "permission_denied"

    assert mine.get(ME).status_code == 200
    denied = AuditEntry.objects.filter(action="security.AccessDenied", actor_id=bob.pk)
    assert {e.details["action"] for e in denied} == {"security.sessions.manage"}


def test_a_bad_session_id_is_a_404_not_a_500(ada):
    client = signed_in(ada.email)
    assert client.get(f"{SESSIONS}/not-a-uuid").status_code == 404


# --- Administrators ------------------------------------------------------------------------


@pytest.fixture
def support(django_user_model):
    """A user whose only role grants ``security.sessions.manage``."""
    user = django_user_model.objects.create_user("support@example.com", PASSWORD)
    role = Role.objects.create(name="Session support", permissions=["security.sessions.manage"])
    RoleAssignment.objects.create(role=role, user=user)
    return user


def test_an_administrator_with_the_permission_lists_and_ends_a_users_sessions(
    ada, support, django_capture_on_commit_callbacks
):
    victim_laptop = signed_in(ada.email)
    victim_phone = signed_in(ada.email)
    admin = signed_in(support.email)

    listed = admin.get(ALL_SESSIONS, {"user_id": str(ada.pk)}).json()["results"]
    assert len(listed) == 2
    response = unsafe(admin, "delete", f"{ALL_SESSIONS}/{listed[0]['id']}")
    assert response.status_code == 204
    assert sorted([victim_laptop.get(ME).status_code, victim_phone.get(ME).status_code]) == [
        200,
        401,
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = unsafe(admin, "post", f"{ALL_SESSIONS}/revoke", {"user_id": str(ada.pk)})
    assert response.json() == {"revoked": 1}
    assert victim_laptop.get(ME).status_code == 401
    assert victim_phone.get(ME).status_code == 401
    ended = AuditEntry.objects.filter(action="security.SessionsEnded", actor_id=support.pk)
    assert {e.details["reason"] for e in ended} == {"revoked_by_administrator"}


def test_an_administrator_gets_a_404_for_an_unknown_session(support):
    admin = signed_in(support.email)
    response = unsafe(admin, "delete", f"{ALL_SESSIONS}/00000000-0000-4000-8000-000000000000")
    assert error_of(response, 404)["code"] == "not_found"


def test_the_session_list_needs_a_csrf_token_only_for_changes(ada):
    client = signed_in(ada.email)
    assert client.get(SESSIONS).status_code == 200
    refused = client.post(REVOKE_OTHERS, format="json")
    assert "CSRF" in error_of(refused, 403)["message"]
    assert client.get(ME).status_code == 200
