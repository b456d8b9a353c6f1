"""``manage.py security token …``: the new token alone on the last line, revoke, list."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from lumina.security.models import ApiToken
from tests.security.auth_support import ME, error_of, events, reset_caches

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", None)


def security(*args: str) -> str:
    out = StringIO()
    call_command("security", *args, stdout=out)
    return out.getvalue()


def test_create_prints_the_token_alone_on_the_last_line_and_it_authenticates(ada):
    output = security("token", "create", "--user", "ada@example.com", "--name", "ci")
    lines = output.rstrip("\n").splitlines()
    secret = lines[-1]
    assert secret.startswith("lum_")
    assert len(secret) == 47
    assert secret not in "\n".join(lines[:-1])
    body = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get(ME).json()
    assert body["id"] == str(ada.pk)
    (event,) = events("security.ApiTokenCreated")
    assert event["actor_id"] is None
    assert secret not in str(event)


def test_create_takes_scopes_and_a_relative_expiry(ada):
    security(
        *("token", "create", "--user", "ada@example.com"),
        *("--scopes", "providers.*, memory.read", "--expires", "30d"),
    )
    token = ApiToken.objects.get()
    assert token.scopes == ["providers.*", "memory.read"]
    expected = timezone.now() + dt.timedelta(days=30)
    assert abs(token.expires_at - expected) < dt.timedelta(minutes=1)


def test_create_takes_an_iso_date_expiry(ada):
    next_year = timezone.now().year + 1
    security("token", "create", "--user", "ada@example.com", "--expires", f"{next_year}-01-31")
    assert ApiToken.objects.get().expires_at == dt.datetime(next_year, 1, 31, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody@example.com"], "no user nobody@example.com"),
        (["--user", "ada@example.com", "--scopes", "not a scope"], "scopes"),
        (["--user", "ada@example.com", "--expires", "2001-01-01"], "expires_at"),
        (["--user", "ada@example.com", "--expires", "tomorrow"], "--expires"),
    ],
)
def test_create_refuses_bad_input_clearly(ada, args, message):
    with pytest.raises(CommandError, match=message):
        security("token", "create", *args)
    assert ApiToken.objects.count() == 0


def test_revoke_by_prefix_or_id_refuses_the_token(ada):
    first = security("token", "create", "--user", "ada@example.com").splitlines()[-1]
    second = security("token", "create", "--user", "ada@example.com").splitlines()[-1]
    assert "revoked" in security("token", "revoke", first[:12])
    second_id = ApiToken.objects.get(prefix=second[:12]).id
    security("token", "revoke", str(second_id))
    for secret in (first, second):
        response = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get(ME)
        assert error_of(response, 401)["code"] == "token_revoked"
    assert len(events("security.ApiTokenRevoked")) == 2


def test_revoke_of_an_unknown_token_is_a_clear_error(ada):
    with pytest.raises(CommandError, match="no API token"):
        security("token", "revoke", "lum_nothere")


def test_list_shows_tokens_but_never_their_secret(ada):
    created = security("token", "create", "--user", "ada@example.com", "--name", "ci")
    secret = created.splitlines()[-1]
    output = security("token", "list", "--user", "ada@example.com")
    assert secret[:12] in output
    assert secret not in output
    assert "active" in output
    assert "ci" in output
