"""Helpers for the registry tests: actors with roles, and fresh per-process caches."""

from __future__ import annotations

import pytest
from django.db import connection

from lumina.providers.selectors.registry import catalogue_clear_local, endpoint_cache_clear
from lumina.security.types import Actor
from tests.security.rbac_support import actor_for, give_role, make_user

SECRET = "sk-test-7d1e5c0a9b-do-not-leak"
SYSTEM = Actor.system("tests")


@pytest.fixture(autouse=True)
def fresh_registry_caches():
    """A test's catalogue and decrypted keys must not come from a rolled-back test."""
    catalogue_clear_local()
    endpoint_cache_clear()
    yield
    catalogue_clear_local()
    endpoint_cache_clear()


def user_with_role(role: str, **extra):
    user = make_user(**extra)
    give_role(user, role)
    return user


def actor_with_role(role: str) -> Actor:
    return actor_for(user_with_role(role))


def stored_api_key(provider_id) -> str:
    """The api_key column exactly as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_provider WHERE id = %s", [provider_id])
        return cursor.fetchone()[0]
