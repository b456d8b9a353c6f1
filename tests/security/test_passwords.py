"""Password change (with the current password) and reset by an emailed link: both end the
user's other sessions; reset links work once and expire; the reset form never tells
whether an account exists."""

from __future__ import annotations

import datetime as dt
import re
import socket
from urllib.parse import urlsplit

import pytest
import time_machine
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from django.core import mail
from django.utils import timezone

from lumina.security.models.audit import AuditEntry
from lumina.security.services import mfa as mfa_services
from tests.security.auth_support import (
    ME,
    PASSWORD,
    browser,
    error_of,
    login,
    reset_caches,
)
from tests.security.mfa_support import code_for

pytestmark = pytest.mark.django_db

CHANGE = "/api/v1/auth/password"
RESET = "/api/v1/auth/password/reset"
CONFIRM = "/api/v1/auth/password/reset/confirm"
NEW_PASSWORD = "a brand new passphrase 7"
LINK = re.compile(r"https?://\S+/accounts/password-reset/(?P<uid>[^/\s]+)/(?P<token>[^/\s]+)/")


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", PASSWORD)


def signed_in(email: str, password: str = PASSWORD):
    client = browser()
    assert login(client, email, password).status_code == 200
    return client


def unsafe(client, path: str, data: dict):
    return client.post(
        path, data, format="json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )


def request_reset(email: str, capture):
    with capture(execute=True):  # the link is mailed once the request has committed
        return browser().post(RESET, {"email": email}, format="json")


def link_in(message) -> dict:
    match = LINK.search(message.body)
    assert match, message.body
    return match.groupdict()


# --- Change --------------------------------------------------------------------------------


def test_changing_the_password_ends_my_other_sessions_and_keeps_this_one(
    ada, django_capture_on_commit_callbacks
):
    here = signed_in(ada.email)
    elsewhere = signed_in(ada.email)

    with django_capture_on_commit_callbacks(execute=True):
        response = unsafe(
            here, CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )

    assert response.status_code == 200, response.content
    assert response.json() == {"sessions_ended": 1}
    assert here.get(ME).status_code == 200
    assert elsewhere.get(ME).status_code == 401
    assert login(browser(), ada.email, PASSWORD).status_code == 401
    assert login(browser(), ada.email, NEW_PASSWORD).status_code == 200
    entry = AuditEntry.objects.get(action="security.PasswordChanged")
    assert entry.details["method"] == "change"
    assert NEW_PASSWORD not in str(list(AuditEntry.objects.values_list("details", flat=True)))


def test_a_wrong_current_password_is_refused_naming_the_field_and_audited(ada):
    client = signed_in(ada.email)

    response = unsafe(
        client, CHANGE, {"current_password": "not it at all", "new_password": NEW_PASSWORD}
    )

    assert error_of(response, 400)["fields"] == {
        "current_password": ["The current password is not correct."]
    }
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)
    assert AuditEntry.objects.filter(action="security.PasswordChangeRefused").count() == 1


def test_wrong_current_passwords_count_towards_the_lockout(ada, settings):
    settings.LUMINA_LOGIN_MAX_FAILURES = 3
    client = signed_in(ada.email)
    for _ in range(3):
        unsafe(client, CHANGE, {"current_password": "guess", "new_password": NEW_PASSWORD})

    response = unsafe(client, CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD})

    assert error_of(response, 429)["code"] == "account_locked"


def test_a_weak_new_password_is_refused_naming_the_field(ada):
    client = signed_in(ada.email)
    response = unsafe(client, CHANGE, {"current_password": PASSWORD, "new_password": "password"})
    assert "new_password" in error_of(response, 400)["fields"]


def test_a_token_cannot_change_the_password(ada):
    from lumina.security.services.tokens import token_create
    from lumina.security.types import Actor

    created = token_create(
        actor=Actor(user_id=ada.pk, email=ada.email), user_id=ada.pk, name="ci", scopes=["*"]
    )
    client = browser()
    response = client.post(
        CHANGE,
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {created.token}",
    )
    assert response.status_code in (401, 403)
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)


# --- Reset ---------------------------------------------------------------------------------


def test_the_reset_form_answers_alike_for_known_and_unknown_addresses(
    ada, django_user_model, django_capture_on_commit_callbacks
):
    django_user_model.objects.create_user("gone@example.com", PASSWORD, is_active=False)

    answers = [
        request_reset(email, django_capture_on_commit_callbacks)
        for email in ("ada@example.com", "nobody@example.com", "gone@example.com")
    ]

    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]  # guard: one went out
    requested = AuditEntry.objects.filter(action="security.PasswordResetRequested")
    assert {(e.details["email"], e.details["mailed"]) for e in requested} == {
        ("ada@example.com", True),
        ("nobody@example.com", False),
        ("gone@example.com", False),
    }


def test_a_reset_link_sets_the_password_once_and_ends_every_session(
    ada, django_capture_on_commit_callbacks
):
    before = signed_in(ada.email)
    request_reset(ada.email, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])
    data = {**link, "new_password": NEW_PASSWORD}

    with django_capture_on_commit_callbacks(execute=True):
        first = browser().post(CONFIRM, data, format="json")

    assert first.status_code == 204, first.content
    assert before.get(ME).status_code == 401
    assert login(browser(), ada.email, NEW_PASSWORD).status_code == 200
    again = browser().post(
        CONFIRM, {**link, "new_password": "yet another passphrase 8"}, format="json"
    )
    assert error_of(again, 400)["code"] == "invalid_token"
    assert "token" in error_of(again, 400)["fields"]
    ada.refresh_from_db()
    assert ada.check_password(NEW_PASSWORD)
    ended = AuditEntry.objects.get(action="security.SessionsEnded")
    assert ended.details["reason"] == "password_reset"
    assert AuditEntry.objects.filter(action="security.PasswordResetFailed").count() == 1


def test_a_reset_link_expires(ada, settings, django_capture_on_commit_callbacks):
    settings.PASSWORD_RESET_TIMEOUT = 3600
    request_reset(ada.email, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])

    with time_machine.travel(timezone.now() + dt.timedelta(seconds=3601)):
        response = browser().post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")

    assert error_of(response, 400)["code"] == "invalid_token"
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)


@pytest.mark.parametrize(
    "change",
    [
        {"token": "abc-0123456789abcdef"},
        {"uid": "bm90LWEtdXNlcg"},
        {"uid": "!!!"},
    ],
)
def test_a_forged_or_mangled_link_is_refused(ada, django_capture_on_commit_callbacks, change):
    request_reset(ada.email, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0]) | change
    response = browser().post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    assert error_of(response, 400)["code"] == "invalid_token"


def test_a_weak_password_keeps_the_link_usable(ada, django_capture_on_commit_callbacks):
    request_reset(ada.email, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])

    weak = browser().post(CONFIRM, {**link, "new_password": "password"}, format="json")
    assert "new_password" in error_of(weak, 400)["fields"]

    confirmed = browser().post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    assert confirmed.status_code == 204


def test_one_mailbox_gets_at_most_one_link_a_minute(ada, django_capture_on_commit_callbacks):
    first = request_reset(ada.email, django_capture_on_commit_callbacks)
    second = request_reset(ada.email, django_capture_on_commit_callbacks)
    assert first.content == second.content
    assert len(mail.outbox) == 1


def test_a_reset_keeps_the_second_factor(django_capture_on_commit_callbacks):
    from tests.security.mfa_support import enrolled_user

    user, device = enrolled_user("with-mfa@example.com")
    request_reset(user.email, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])
    confirmed = browser().post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    assert confirmed.status_code == 204

    client = browser()
    assert login(client, user.email, NEW_PASSWORD).json()["mfa_required"] is True
    assert client.get("/api/v1/auth/tokens").status_code == 403
    assert code_for(device)  # the device is still there to verify with
    assert mfa_services.user_has_confirmed_device(user=user)


def test_the_reset_page_sets_the_password_without_the_token_in_its_address(
    ada, django_capture_on_commit_callbacks
):
    request_reset(ada.email, django_capture_on_commit_callbacks)
    link = LINK.search(mail.outbox[0].body).group(0)
    client = browser()

    opened = client.get(urlsplit(link).path)
    assert opened.status_code == 302
    form_url = opened["Location"]
    assert link_in(mail.outbox[0])["token"] not in form_url
    assert client.get(form_url).status_code == 200
    token = client.cookies["csrftoken"].value
    done = client.post(
        form_url,
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        HTTP_X_CSRFTOKEN=token,
        format="multipart",
    )

    assert done.status_code == 302, done.content
    assert login(browser(), ada.email, NEW_PASSWORD).status_code == 200
    again = browser().get(urlsplit(link).path)
    assert again.status_code == 200
    assert b"Password reset unsuccessful" in again.content


# --- Real SMTP -----------------------------------------------------------------------------


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def handle_message(self, message) -> None:
        self.messages.append(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A loopback SMTP server (aiosmtpd) that keeps what it receives."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_the_reset_link_goes_out_over_smtp(
    ada, settings, smtp_server, django_capture_on_commit_callbacks
):
    controller, inbox = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.server.sockets[0].getsockname()[1]

    request_reset(ada.email, django_capture_on_commit_callbacks)

    (message,) = inbox.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Reset your Lumina password"
    assert LINK.search(message.get_payload(decode=True).decode())
