"""Fixtures for the memory tests: users with each built-in role, their actors and clients.

``people`` gives one user per role (plus a staff user with no role and a user with none);
``client_as(user)`` is an APIClient signed in as that user; ``actor_as(user)`` its Actor.
"""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from lumina.security.models.users import User
from lumina.security.types import Actor
from tests.security.rbac_support import actor_for, give_role

SYSTEM = Actor.system("tests")


def user_with_role(role: str | None, **extra):
    # No password: hashing one costs most of a test's set-up.
    user = User.objects.create_user(f"{uuid.uuid4().hex[:10]}@example.com", None, **extra)
    if role is not None:
        give_role(user, role)
    return user


def client_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def actor_as(user) -> Actor:
    return actor_for(user)


class People:
    """Users created on first use: ``nobody`` (signed in, no role), ``viewer``,
    ``developer``, ``other_developer``, ``admin`` and ``staff`` (is_staff, no role:
    staff grants nothing)."""

    ROLES = {
        "nobody": (None, {}),
        "viewer": ("Viewer", {}),
        "developer": ("Developer", {}),
        "other_developer": ("Developer", {}),
        "admin": ("Admin", {}),
        "staff": (None, {"is_staff": True}),
    }

    def __getattr__(self, name: str):
        if name not in self.ROLES:
            raise AttributeError(name)
        role, extra = self.ROLES[name]
        user = user_with_role(role, **extra)
        setattr(self, name, user)
        return user


@pytest.fixture
def people(db) -> People:
    return People()


@pytest.fixture
def developer(people) -> object:
    return people.developer


@pytest.fixture
def developer_client(people) -> APIClient:
    return client_as(people.developer)


@pytest.fixture
def developer_actor(people) -> Actor:
    return actor_as(people.developer)


@pytest.fixture
def viewer_client(people) -> APIClient:
    return client_as(people.viewer)


@pytest.fixture
def manager_client(people) -> APIClient:
    """An Admin: holds memory.manage."""
    return client_as(people.admin)


@pytest.fixture(autouse=True)
def _fresh_registry_caches():
    """A catalogue cached by a rolled-back test must not serve the next (as in tests/providers)."""
    from lumina.providers.selectors.registry import catalogue_clear_local, endpoint_cache_clear

    catalogue_clear_local()
    endpoint_cache_clear()
    yield
    catalogue_clear_local()
    endpoint_cache_clear()


@pytest.fixture
def embedder_down(db):
    """The shipped local embedding model is switched off: embeddings answer 503."""
    from lumina.providers.models.registry import Provider
    from lumina.providers.selectors.registry import catalogue_clear_local, endpoint_cache_clear

    assert Provider.objects.filter(name="local").update(enabled=False) == 1
    catalogue_clear_local()
    endpoint_cache_clear()
