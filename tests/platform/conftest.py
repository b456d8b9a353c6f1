"""Fixtures for the platform tests: Lumina under a real ASGI server."""

from tests.providers.gateway_support import asgi_server  # noqa: F401 (a fixture)
