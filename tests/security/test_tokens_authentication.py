"""Bearer token authentication: 401s in the common shape, caching, revocation, speed."""

from __future__ import annotations

import datetime as dt
import uuid
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from lumina.kernel import generations
from lumina.kernel.models import Generation
from lumina.security.api import InvalidTokenError, TokenInfo, authenticate_token, authorize
from lumina.security.http.actors import actor_of
from lumina.security.http.authentication import TokenAuthentication
from lumina.security.models import ApiToken
from lumina.security.services import tokens
from lumina.security.services.tokens import token_authenticate, token_create
from lumina.security.types import Actor
from tests.security.auth_support import ME, TOKENS, error_of, reset_caches

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", None)


def issue(user, **options) -> tuple[str, str]:
    issued = token_create(user_id=user.pk, actor=SYSTEM, **options)
    return issued.secret, str(issued.token.id)


def bearer(secret: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")


def refused(response, code: str) -> dict:
    error = error_of(response, 401)
    assert error["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")
    return error


class ActorProbe(APIView):
    """Answers with the actor a request resolves to."""

    def get(self, request):
        actor = actor_of(request)
        return Response(
            {
                "user_id": str(actor.user_id),
                "token_id": str(actor.token_id),
                "scopes": sorted(actor.scopes) if actor.scopes is not None else None,
            }
        )


class ScopedProbe(APIView):
    """An endpoint requiring ``providers.add``, decided by ``authorize``."""

    def get(self, request):
        decision = authorize(actor_of(request), "providers.add")
        if not decision:
            raise PermissionDenied(decision.reason)
        return Response({"allowed": True})


def test_a_token_lacking_the_scope_an_endpoint_needs_is_refused_with_403(admin_user):
    narrow, _ = issue(admin_user, scopes=["memory.read"])
    wide, _ = issue(admin_user, scopes=["providers.*"])
    probe = ScopedProbe.as_view()
    factory = APIRequestFactory()
    refused = probe(factory.get("/probe", HTTP_AUTHORIZATION=f"Bearer {narrow}"))
    assert refused.status_code == 403
    assert refused.data["error"]["code"] == "permission_denied"
    allowed = probe(factory.get("/probe", HTTP_AUTHORIZATION=f"Bearer {wide}"))
    assert allowed.status_code == 200


def test_a_bearer_token_authenticates_the_request(ada):
    secret, token_id = issue(ada, scopes=["memory.read", "providers.*"])
    body = bearer(secret).get(ME).json()
    assert body["id"] == str(ada.pk)
    assert body["authenticated_by"] == "token"
    assert body["token_id"] == token_id
    assert body["scopes"] == ["memory.read", "providers.*"]
    assert (body["mfa_required"], body["mfa_verified"]) == (False, False)


def test_the_actor_of_a_token_request_carries_the_token_and_its_scopes(ada):
    secret, token_id = issue(ada, scopes=["memory.read"])
    request = APIRequestFactory().get("/probe", HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = ActorProbe.as_view()(request).data
    assert body == {"user_id": str(ada.pk), "token_id": token_id, "scopes": ["memory.read"]}


def test_the_public_api_authenticates_a_token_to_an_actor(ada):
    secret, token_id = issue(ada, scopes=["memory.read"])
    actor = authenticate_token(secret, ip_address="192.0.2.4")
    assert actor.user_id == ada.pk
    assert str(actor.token_id) == token_id
    assert actor.scopes == frozenset({"memory.read"})
    assert actor.ip_address == "192.0.2.4"
    assert actor.mfa_verified is False
    with pytest.raises(InvalidTokenError) as error:
        authenticate_token("lum_" + "A" * 43)
    assert error.value.status == 401


def test_request_auth_is_a_frozen_token_info(ada):
    secret, token_id = issue(ada)
    request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    user, info = TokenAuthentication().authenticate(request)
    assert user == ada
    assert isinstance(info, TokenInfo)
    assert str(info.id) == token_id
    with pytest.raises(AttributeError):
        info.scopes = ("*",)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer lum_a lum_b",
        "Bearer not-a-lumina-token",
        "Bearer lum_short",
        "Bearer lum_" + "A" * 42 + "!",
        "Bearer lum_" + "A" * 44,
        "bearer " + "x" * 5000,
    ],
)
def test_malformed_bearer_headers_are_a_401(header):
    refused(APIClient(HTTP_AUTHORIZATION=header).get(ME), "malformed_token")


@pytest.mark.parametrize("character", ["\u00e9", "\u20ac", "\x00"])
def test_a_bearer_token_with_non_ascii_characters_is_a_401(character):
    refused(bearer("lum_" + character + "A" * 42).get(ME), "malformed_token")


def test_an_unknown_token_is_a_401():
    refused(bearer("lum_" + "A" * 43).get(ME), "invalid_token")


def test_an_expired_token_is_a_401(ada):
    secret, token_id = issue(ada, expires_at=timezone.now() + dt.timedelta(hours=1))
    ApiToken.objects.filter(pk=token_id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    refused(bearer(secret).get(ME), "token_expired")


def test_a_cached_token_is_refused_once_it_expires(ada):
    secret, _ = issue(ada, expires_at=timezone.now() + dt.timedelta(hours=1))
    assert bearer(secret).get(ME).status_code == 200
    later = timezone.now() + dt.timedelta(hours=2)
    with mock.patch("lumina.security.services.tokens.timezone.now", return_value=later):
        refused(bearer(secret).get(ME), "token_expired")


def test_a_revoked_token_is_a_401(ada):
    secret, token_id = issue(ada)
    ApiToken.objects.filter(pk=token_id).update(revoked_at=timezone.now())
    refused(bearer(secret).get(ME), "token_revoked")


def test_a_revoked_token_is_refused_at_once_even_after_it_was_cached(ada):
    secret, token_id = issue(ada)
    client = bearer(secret)
    assert client.get(ME).status_code == 200  # now in the in-process cache
    owner = APIClient()
    owner.force_authenticate(ada)
    assert owner.delete(f"{TOKENS}/{token_id}").status_code == 200
    refused(client.get(ME), "token_revoked")


def test_a_revocation_in_another_process_reaches_this_ones_cache(ada, monkeypatch):
    """Another process revokes and bumps the generation in the database, nothing else
    (tests/security/test_cross_process.py does it with real processes)."""
    secret, token_id = issue(ada)
    assert bearer(secret).get(ME).status_code == 200
    ApiToken.objects.filter(pk=token_id).update(revoked_at=timezone.now())
    Generation.objects.update_or_create(name=tokens.GENERATION, defaults={"value": uuid.uuid4()})
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 0.0)  # the bound has passed
    refused(bearer(secret).get(ME), "token_revoked")


def test_a_token_survives_a_flush_of_the_shared_cache(ada):
    secret, _ = issue(ada)
    assert bearer(secret).get(ME).status_code == 200
    cache.clear()
    assert bearer(secret).get(ME).status_code == 200


def test_a_token_of_an_inactive_user_is_a_401(ada):
    secret, _ = issue(ada)
    ada.is_active = False
    ada.save()
    refused(bearer(secret).get(ME), "invalid_token")


def test_deactivating_a_user_refuses_their_already_cached_token_at_once(ada):
    secret, _ = issue(ada)
    assert bearer(secret).get(ME).status_code == 200  # now cached
    ada.is_active = False
    ada.save()
    refused(bearer(secret).get(ME), "invalid_token")


def test_bookkeeping_saves_keep_cached_tokens_warm(ada, monkeypatch):
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 3600.0)  # within the bound
    secret, _ = issue(ada)
    token_authenticate(raw=secret)
    ada.save(update_fields=["last_login"])
    with CaptureQueriesContext(connection) as queries:
        token_authenticate(raw=secret)
    assert len(queries) == 0


def test_other_authorization_schemes_are_left_to_other_authenticators():
    response = APIClient(HTTP_AUTHORIZATION="Basic YWRhOnB3").get(ME)
    assert error_of(response, 401)["code"] == "not_authenticated"


def test_warm_authentications_need_no_database_query(ada, monkeypatch):
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 3600.0)  # within the bound
    secret, _ = issue(ada)
    token_authenticate(raw=secret)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            user, _info = token_authenticate(raw=secret)
    assert len(queries) == 0
    assert user.pk == ada.pk


def test_last_used_at_is_written_at_most_once_a_minute(ada, monkeypatch):
    monkeypatch.setattr(generations, "STALENESS_SECONDS", 3600.0)  # only the token's queries
    secret, token_id = issue(ada)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(10):
            token_authenticate(raw=secret)
    updates = [q for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    first_use = ApiToken.objects.get(pk=token_id).last_used_at
    assert first_use is not None

    a_minute_later = timezone.now() + dt.timedelta(seconds=61)
    with (
        mock.patch("lumina.security.services.tokens.timezone.now", return_value=a_minute_later),
        CaptureQueriesContext(connection) as queries,
    ):
        for _ in range(10):
            token_authenticate(raw=secret)
    assert len([q for q in queries if q["sql"].startswith("UPDATE")]) == 1
    assert ApiToken.objects.get(pk=token_id).last_used_at == a_minute_later


def test_last_used_at_is_not_rewritten_by_a_second_process_within_the_minute(ada):
    secret, token_id = issue(ada)
    token_authenticate(raw=secret)
    stamped = ApiToken.objects.get(pk=token_id).last_used_at
    reset_caches()  # a fresh process: no memory of the last write
    token_authenticate(raw=secret)
    assert ApiToken.objects.get(pk=token_id).last_used_at == stamped


def test_a_token_user_is_a_fresh_instance_per_request(ada):
    secret, _ = issue(ada)
    first, _ = token_authenticate(raw=secret)
    first.email = "changed-in-memory@example.com"
    second, _ = token_authenticate(raw=secret)
    assert second.email == "ada@example.com"
    assert first is not second


def test_warm_token_authentication_makes_no_query(ada, django_assert_num_queries):
    # Its cost per call is measured by benchmarks/security.py.
    secret, _ = issue(ada)
    request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    authenticator = TokenAuthentication()
    authenticator.authenticate(request)
    with django_assert_num_queries(0):
        user, _info = authenticator.authenticate(request)
    assert user.email == "ada@example.com"
