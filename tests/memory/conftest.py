"""Fixtures for the memory tests: users with each built-in role, their actors and clients.

``people`` gives one user per role (plus a staff user with no role and a user with none);
``client_as(user)`` is an APIClient signed in as that user; ``actor_as(user)`` its Actor.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from lumina.security.types import Actor
from tests.security.rbac_support import actor_for, give_role, make_user

SYSTEM = Actor.system("tests")


def user_with_role(role: str | None, **extra):
    user = make_user(**extra)
    if role is not None:
        give_role(user, role)
    return user


def client_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def actor_as(user) -> Actor:
    return actor_for(user)


@dataclass
class People:
    nobody: object  # signed in, no role
    viewer: object
    developer: object
    other_developer: object
    admin: object
    staff: object  # is_staff, no role: staff grants nothing


@pytest.fixture
def people(db) -> People:
    return People(
        nobody=user_with_role(None),
        viewer=user_with_role("Viewer"),
        developer=user_with_role("Developer"),
        other_developer=user_with_role("Developer"),
        admin=user_with_role("Admin"),
        staff=user_with_role(None, is_staff=True),
    )


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
def _usage_ledger_in_the_foreground(settings):
    """Embedding calls write usage: no background writer in tests (as in tests/providers)."""
    from lumina.providers.services import usage

    settings.LUMINA_USAGE_WRITER_THREAD = False
    usage.usage_writer_stop(flush=False)
    yield
    usage._buffer.clear()
    usage._events.clear()
