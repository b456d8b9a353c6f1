"""Fixtures for the security tests: the OpenID provider on loopback (one per session)."""

from tests.security.oidc_support import identity_provider, openid_provider  # noqa: F401
