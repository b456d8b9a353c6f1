"""Fixtures for the providers tests: loopback upstreams, and the adapters' HTTP sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from lumina.providers.adapters.http import close_sessions
from tests.providers.gateway_support import asgi_server  # noqa: F401 (a fixture)
from tests.providers.upstreams import anthropic, ollama, openai
from tests.providers.upstreams.base import UpstreamServer


@pytest.fixture
def openai_upstream() -> Iterator[UpstreamServer]:
    """OpenAI's wire format on 127.0.0.1; ``.url`` ends in ``/v1``, ``.root`` serves Azure."""
    with UpstreamServer(openai.build_app, base_path=openai.BASE_PATH) as server:
        yield server


@pytest.fixture
def anthropic_upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(anthropic.build_app) as server:
        yield server


@pytest.fixture
def ollama_upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(ollama.build_app) as server:
        yield server


@pytest_asyncio.fixture
async def http_sessions() -> AsyncIterator[None]:
    """Close the test loop's pooled client at the end, as the server does at shutdown."""
    yield
    await close_sessions()


@pytest.fixture(autouse=True)
def _fresh_registry_caches():
    """A catalogue or decrypted key cached by a rolled-back test must not serve the next."""
    from lumina.providers.selectors.registry import catalogue_clear_local, endpoint_cache_clear

    catalogue_clear_local()
    endpoint_cache_clear()
    yield
    catalogue_clear_local()
    endpoint_cache_clear()
