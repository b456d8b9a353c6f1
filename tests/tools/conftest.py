"""Fixtures for the tools tests: callers by role, their API clients, and tools to run."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from lumina.security.types import Actor

SYSTEM = Actor.system("tests")


def make_user(*, staff: bool = False, role: str | None = None) -> User:
    """A user without a password, holding the built-in ``role`` if given."""
    user = User.objects.create_user(f"{uuid.uuid4().hex[:12]}@tools.example", None, is_staff=staff)
    if role is not None:
        RoleAssignment.objects.create(role=Role.objects.get(name=role), user=user)
    return user


def actor_of_user(user: User) -> Actor:
    return Actor.for_user(user, mfa_verified=False)


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def user_factory() -> Callable[..., User]:
    return make_user


@pytest.fixture
def nobody() -> User:
    """Signed in, no role."""
    return make_user()


@pytest.fixture
def staff() -> User:
    """Staff without a role: the admin console opens, nothing else."""
    return make_user(staff=True)


@pytest.fixture
def viewer() -> User:
    return make_user(role="Viewer")


@pytest.fixture
def developer() -> User:
    return make_user(role="Developer")


@pytest.fixture
def other_developer() -> User:
    return make_user(role="Developer")


@pytest.fixture
def tools_admin() -> User:
    return make_user(role="Admin")


@pytest.fixture
def developer_client(developer) -> APIClient:
    return client_for(developer)


@pytest.fixture
def tools_admin_client(tools_admin) -> APIClient:
    return client_for(tools_admin)


# Loopback upstreams and the real ASGI server, shared with the providers tests.
from tests.providers.conftest import (  # noqa: E402, F401 (fixtures)
    _fresh_registry_caches,
    anthropic_upstream,
    http_sessions,
    openai_upstream,
)
from tests.providers.gateway_support import asgi_server  # noqa: E402, F401 (a fixture)
