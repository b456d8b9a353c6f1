"""One way to build an ``Actor`` from a user, used by every entry point.

Four copies used to drift (the admin's and the token path's disagreed on
``mfa_verified``). Now REST, the admin console, token authentication (the gateway),
websocket connections and the policy explanation all go through ``Actor.for_user``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from lumina.security.api import actor_of, actor_of_scope, authenticate_token
from lumina.security.http.authentication import TokenAuthentication
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor

pytestmark = pytest.mark.django_db

LUMINA = Path(__file__).resolve().parents[2] / "lumina"


def test_sessions_carry_the_second_factor_and_tokens_never_do(django_user_model):
    user = django_user_model.objects.create_user("ada@example.com", None, is_staff=True)
    user.is_verified = lambda: True  # what django-otp's middleware sets after a code
    request = RequestFactory().get("/admin/", REMOTE_ADDR="198.51.100.7")
    request.user = user

    session = actor_of(request)  # the admin console's and REST sessions' path

    assert session == Actor(
        user_id=user.pk,
        email=user.email,
        is_staff=True,
        mfa_verified=True,
        ip_address="198.51.100.7",
    )

    secret = token_create(user_id=user.pk, actor=Actor.system("tests"), scopes=["memory.*"]).secret
    rest = Request(
        APIRequestFactory().get(
            "/", HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="198.51.100.7"
        )
    )
    rest.user, rest.auth = TokenAuthentication().authenticate(rest)
    rest.user.is_verified = lambda: True  # even so: a token carries no second factor
    by_rest = actor_of(rest)
    by_gateway = authenticate_token(secret, ip_address="198.51.100.7")

    by_websocket = actor_of_scope(
        {"user": rest.user, "auth": rest.auth, "client": ("198.51.100.7", 50000)}
    )
    assert by_rest == by_gateway == by_websocket
    assert by_gateway.mfa_verified is False
    assert by_gateway.scopes == frozenset({"memory.*"})
    assert by_gateway.token_id is not None


def _actor_calls_with_a_user() -> list[str]:
    found = []
    for path in LUMINA.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "Actor":
                continue
            for keyword in node.keywords:
                if keyword.arg == "user_id" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is None
                ):
                    found.append(f"{path.relative_to(LUMINA.parent)}:{node.lineno}")
    return found


def test_no_module_builds_a_users_actor_by_hand():
    # Anonymous (user_id=None) and system actors are fine; a user's goes through for_user.
    assert _actor_calls_with_a_user() == []


def test_deferred_work_acts_as_the_user_as_they_are_now_within_the_token_s_scopes(
    django_user_model,
):
    import uuid

    from lumina.security.api import actor_of_user_id, authorize
    from lumina.security.services.rbac import role_assignment_create

    user = django_user_model.objects.create_user("grace@example.com", None)
    role_assignment_create(actor=Actor.system("tests"), role="Developer", user=user.email)

    scoped = actor_of_user_id(user.pk, token_id=uuid.uuid4(), scopes=["memory.read"])
    assert authorize(scoped, "memory.read")
    assert not authorize(scoped, "memory.write")  # the token it was asked with allows less
    assert authorize(actor_of_user_id(user.pk), "memory.write")

    user.is_active = False
    user.save()
    assert not authorize(actor_of_user_id(user.pk), "memory.read")
    assert actor_of_user_id(uuid.uuid4()).user_id is None  # deleted since: nobody
