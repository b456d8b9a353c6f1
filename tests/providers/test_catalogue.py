"""The per-process catalogue and decrypted-key cache the hot path reads."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel.errors import NotFoundError
from lumina.kernel.models import OutboxEvent
from lumina.providers.selectors import registry as selectors
from lumina.providers.selectors.registry import (
    VERSION_KEY,
    catalogue,
    catalogue_async,
    catalogue_clear_local,
    catalogue_invalidate,
    endpoint_for,
    endpoint_for_async,
)
from lumina.providers.services.registry import (
    deployment_create,
    deployment_update,
    provider_create,
    provider_delete,
    provider_update,
)
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    SECRET,
    SYSTEM,
    fresh_registry_caches,
)

pytestmark = pytest.mark.django_db


class Clock:
    """Stands in for time.monotonic in the selectors, so "a second later" is instant."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(selectors.time, "monotonic", fake)
    return fake


def _names(snapshot) -> set[str]:
    return {d.qualified_name for d in snapshot.deployments}


def _provider_with_model(name: str = "acme", model: str = "gpt-4o"):
    provider = provider_create(
        actor=SYSTEM, name=name, kind="openai", base_url="http://127.0.0.1:9/v1", api_key=SECRET
    )
    deployment = deployment_create(actor=SYSTEM, provider_id=provider.id, name=model)
    return provider, deployment


def test_a_change_made_here_is_visible_here_at_once(clock):
    before = catalogue()
    assert "acme/gpt-4o" not in _names(before)
    _provider_with_model()
    assert "acme/gpt-4o" in _names(catalogue())  # no clock advance needed


def test_a_warm_catalogue_reads_neither_database_nor_cache(clock, monkeypatch):
    catalogue()
    reads = []
    monkeypatch.setattr(selectors.cache, "get", lambda *a, **k: reads.append(a))
    with CaptureQueriesContext(connection) as queries:
        for _ in range(1000):
            catalogue()
    assert len(queries) == 0
    assert reads == []


def test_another_processs_change_shows_within_a_second(clock):
    provider = ProviderFactory(name="acme")
    DeploymentFactory(provider=provider, name="old")
    assert "acme/old" in _names(catalogue())
    # Another process: writes, then bumps the shared version; this process's snapshot
    # is untouched.
    DeploymentFactory.build(provider=provider, name="new").save()
    cache.incr(VERSION_KEY)
    clock.now += 0.5
    assert "acme/new" not in _names(catalogue())  # checked at most once a second
    clock.now += 0.6
    assert "acme/new" in _names(catalogue())


def test_an_unchanged_shared_version_keeps_the_snapshot_after_the_check(clock):
    first = catalogue()
    clock.now += 5
    with CaptureQueriesContext(connection) as queries:
        again = catalogue()
    assert again is first
    assert len(queries) == 0


def test_a_new_process_builds_from_the_database_under_the_shared_version(clock):
    catalogue()
    version = cache.get(VERSION_KEY)
    ProviderFactory.build(name="late").save()  # committed by "someone", no bump yet
    catalogue_clear_local()  # a process that starts now has no snapshot
    fresh = catalogue()
    assert fresh.version == version
    assert "late" in {p.name for p in fresh.providers}


def test_invalidation_bumps_the_shared_version_for_every_process(clock):
    catalogue()
    before = cache.get(VERSION_KEY)
    catalogue_invalidate()
    assert cache.get(VERSION_KEY) == before + 1


def test_events_invalidate_in_the_process_they_are_delivered_to(
    clock, django_capture_on_commit_callbacks
):
    catalogue()
    before = cache.get(VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        _provider_with_model()
    # Bumped by the service (now, on commit) and by the handler of each event.
    assert cache.get(VERSION_KEY) >= before + 4
    delivered = OutboxEvent.objects.filter(name__startswith="providers.Provider")
    assert delivered.exists()


def test_a_lost_cache_entry_rebuilds_rather_than_serving_stale_data(clock):
    ProviderFactory(name="before")
    catalogue()
    ProviderFactory.build(name="after").save()
    cache.delete(VERSION_KEY)  # evicted, or Redis restarted
    clock.now += 2
    assert "after" in {p.name for p in catalogue().providers}


def test_disabled_providers_and_models_are_listed_but_do_not_resolve(clock):
    provider, deployment = _provider_with_model()
    deployment_update(actor=SYSTEM, deployment_id=deployment.id, enabled=False)
    snapshot = catalogue()
    assert "acme/gpt-4o" in _names(snapshot)
    assert snapshot.resolve("acme/gpt-4o") == ()
    deployment_update(actor=SYSTEM, deployment_id=deployment.id, enabled=True)
    provider_update(actor=SYSTEM, provider_id=provider.id, enabled=False)
    assert catalogue().resolve("acme/gpt-4o") == ()
    assert all(d.provider.name != "acme" for d in catalogue().resolve("gpt-4o"))


# --- Endpoints ---------------------------------------------------------------------------


def _decryptions() -> int:
    return OutboxEvent.objects.filter(name="security.SecretDecrypted").count()


def test_the_key_is_decrypted_once_per_revision(clock):
    _provider_with_model()
    [model] = catalogue().resolve("acme/gpt-4o")
    endpoint = endpoint_for(model)
    assert endpoint.api_key == SECRET
    assert endpoint.model == "gpt-4o"
    assert endpoint.base_url == "http://127.0.0.1:9/v1"
    assert SECRET not in repr(endpoint)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            assert endpoint_for(model) is endpoint
    assert len(queries) == 0
    assert _decryptions() == 1


def test_a_new_key_is_used_after_the_revision_changes(clock):
    provider, _ = _provider_with_model()
    [model] = catalogue().resolve("acme/gpt-4o")
    assert endpoint_for(model).api_key == SECRET
    provider_update(actor=SYSTEM, provider_id=provider.id, api_key="sk-rotated")
    [model] = catalogue().resolve("acme/gpt-4o")
    assert endpoint_for(model).api_key == "sk-rotated"
    assert _decryptions() == 2
    assert all(key[1] == model.provider.revision for key in selectors._secrets)


def test_a_provider_without_a_key_needs_no_database(clock):
    provider = ProviderFactory(name="keyless")
    DeploymentFactory(provider=provider, name="m")
    [model] = catalogue().resolve("keyless/m")
    with CaptureQueriesContext(connection) as queries:
        assert endpoint_for(model).api_key is None
    assert len(queries) == 0


def test_a_deleted_provider_is_reported_not_crashed_on(clock):
    provider, _ = _provider_with_model()
    [model] = catalogue().resolve("acme/gpt-4o")
    provider_delete(actor=SYSTEM, provider_id=provider.id)
    with pytest.raises(NotFoundError):
        endpoint_for(model)


@pytest.mark.django_db(transaction=True)  # the threads read committed rows
def test_concurrent_cold_calls_decrypt_once(clock, monkeypatch):
    key = f"sk-{secrets.token_urlsafe(24)}"
    provider = provider_create(
        actor=SYSTEM, name="acme", kind="openai", base_url="http://127.0.0.1:9/v1", api_key=key
    )
    deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    [model] = catalogue().resolve("acme/gpt-4o")
    real_decrypt = selectors.decrypt_secret
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("owner"))
        time.sleep(0.05)  # holds the door open while the other threads arrive
        return real_decrypt(*args, **kwargs)

    monkeypatch.setattr(selectors, "decrypt_secret", spy)
    results = []

    def cold_call() -> None:
        try:
            results.append(endpoint_for(model).api_key)
        finally:
            connection.close()  # each thread's own connection

    threads = [threading.Thread(target=cold_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [key] * 8  # the real decryption of the stored key, shared
    assert calls == [f"providers.provider:{provider.id}"]
    assert _decryptions() == 1


@pytest.mark.django_db(transaction=True)
def test_the_async_warm_path_makes_no_thread_hop(clock, monkeypatch):
    _provider_with_model()
    [model] = catalogue().resolve("acme/gpt-4o")
    cold = asyncio.run(endpoint_for_async(model))
    assert cold.api_key == SECRET

    def no_thread(*args, **kwargs):
        raise AssertionError("the warm path must not leave the event loop")

    monkeypatch.setattr(selectors, "sync_to_async", no_thread)
    warm = asyncio.run(endpoint_for_async(model))
    assert warm is cold


@pytest.mark.django_db(transaction=True)
def test_the_async_catalogue_builds_off_the_loop_and_serves_warm_on_it(clock, monkeypatch):
    _provider_with_model()
    catalogue_clear_local()
    built = asyncio.run(catalogue_async())  # the ORM would refuse to run on the loop
    assert "acme/gpt-4o" in _names(built)

    def no_thread(*args, **kwargs):
        raise AssertionError("a fresh catalogue must not leave the event loop")

    monkeypatch.setattr(selectors, "sync_to_async", no_thread)
    assert asyncio.run(catalogue_async()) is built
