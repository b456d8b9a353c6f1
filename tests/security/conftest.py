"""Fixtures for the security tests: the OpenID provider on loopback (one per session)."""

import pytest

from tests.security.oidc_support import identity_provider, openid_provider  # noqa: F401


@pytest.fixture
def generations_steady(monkeypatch):
    """No snapshot refresh during the test: a slow machine must not turn "cached" into
    "re-read", since the test's uncommitted bumps would then look like a change."""
    from lumina.kernel import generations

    monkeypatch.setattr(generations, "STALENESS_SECONDS", float("inf"))
