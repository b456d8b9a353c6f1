"""Reads of the provider registry, and the per-process caches the hot path reads.

``catalogue()`` is the registry as frozen DTOs, kept in a module global: a warm call
costs one clock read. At most once a second it compares a shared version number in
Django's cache (Redis when configured) and rebuilds when another process changed the
registry; ``catalogue_invalidate()`` bumps that number and drops this process's copy.

``endpoint_for()`` adds the decrypted API key. Decrypting is authorised and audited
(~13 ms), so each process does it once per provider revision and keeps the plaintext
in memory only, keyed by ``(provider_id, revision)``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import structlog
from asgiref.sync import sync_to_async
from django.core.cache import cache

from lumina.kernel.errors import NotFoundError
from lumina.providers.models.registry import Deployment, Price, Provider
from lumina.providers.pricing import kind_provider_names
from lumina.providers.types import (
    Capability,
    Catalogue,
    DeploymentDTO,
    Endpoint,
    Prices,
    ProviderDTO,
    ProviderKind,
)
from lumina.security.api import Actor, decrypt_secret

logger = structlog.get_logger(__name__)

VERSION_KEY = "lumina:providers:catalogue-version"
# How stale another process's change may look here, at most.
SHARED_VERSION_CHECK_SECONDS = 1.0
SYSTEM_ACTOR = Actor.system("providers")


# --- DTOs -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VerifiedCapability:
    """What the probe found when it last tried one capability of a deployment."""

    capability: str
    ok: bool
    latency_ms: float | None = None
    checked_at: str | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class DeploymentInfo(DeploymentDTO):
    """A deployment with what only the registry's pages show: where its prices came from
    and what the probe verified. It is a ``DeploymentDTO``, so ``endpoint_for`` takes it."""

    price_source: str = "manual"
    verified: tuple[VerifiedCapability, ...] = ()


@dataclasses.dataclass(frozen=True)
class CapabilityReport:
    """Declared and verified capabilities of one deployment."""

    deployment_id: uuid.UUID
    provider_id: uuid.UUID
    provider_name: str
    name: str
    qualified_name: str
    enabled: bool
    declared: tuple[Capability, ...]
    verified: tuple[VerifiedCapability, ...]


def provider_dto(provider: Provider) -> ProviderDTO:
    return ProviderDTO(
        id=provider.id,
        name=provider.name,
        kind=ProviderKind(provider.kind),
        base_url=provider.base_url,
        has_api_key=bool(provider.api_key),
        enabled=provider.enabled,
        priority=provider.priority,
        weight=provider.weight,
        max_concurrency=provider.max_concurrency,
        connect_timeout=provider.connect_timeout,
        read_timeout=provider.read_timeout,
        api_version=provider.api_version or None,
        tags=frozenset(provider.tags),
        revision=provider.revision,
    )


def _prices(row: Deployment | Price) -> Prices:
    return Prices(
        input=Decimal(row.input_price),
        output=Decimal(row.output_price),
        cached_input=row.cached_input_price,
        cache_write=row.cache_write_price,
        reasoning=row.reasoning_price,
    )


def _verified(raw: Any) -> tuple[VerifiedCapability, ...]:
    if not isinstance(raw, Mapping):
        return ()
    found = []
    for capability, result in sorted(raw.items()):
        if not isinstance(result, Mapping):
            continue
        latency = result.get("latency_ms")
        found.append(
            VerifiedCapability(
                capability=str(capability),
                ok=bool(result.get("ok")),
                latency_ms=float(latency) if isinstance(latency, int | float) else None,
                checked_at=result.get("checked_at"),
                error=str(result.get("error") or ""),
            )
        )
    return tuple(found)


def _deployment_fields(deployment: Deployment, provider: ProviderDTO) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "provider": provider,
        "name": deployment.name,
        "upstream_model": deployment.upstream_model,
        "aliases": tuple(deployment.aliases),
        "capabilities": frozenset(Capability(c) for c in deployment.capabilities),
        "context_window": deployment.context_window,
        "max_output_tokens": deployment.max_output_tokens,
        "prices": _prices(deployment),
        "enabled": deployment.enabled,
        "tags": frozenset(deployment.tags),
    }


def deployment_dto(deployment: Deployment, provider: ProviderDTO | None = None) -> DeploymentDTO:
    return DeploymentDTO(
        **_deployment_fields(deployment, provider or provider_dto(deployment.provider))
    )


def deployment_info(deployment: Deployment, provider: ProviderDTO | None = None) -> DeploymentInfo:
    return DeploymentInfo(
        **_deployment_fields(deployment, provider or provider_dto(deployment.provider)),
        price_source=deployment.price_source,
        verified=_verified(deployment.verified_capabilities),
    )


# --- Registry reads ---------------------------------------------------------------------


def provider_list(*, kind: str | None = None, enabled: bool | None = None) -> list[ProviderDTO]:
    rows = Provider.objects.order_by("name")
    if kind is not None:
        rows = rows.filter(kind=kind)
    if enabled is not None:
        rows = rows.filter(enabled=enabled)
    return [provider_dto(row) for row in rows]


def provider_get(*, provider_id: uuid.UUID) -> ProviderDTO | None:
    provider = Provider.objects.filter(pk=provider_id).first()
    return provider_dto(provider) if provider is not None else None


def provider_get_by_name(*, name: str) -> ProviderDTO | None:
    provider = Provider.objects.filter(name=name).first()
    return provider_dto(provider) if provider is not None else None


def deployment_list(
    *, provider_id: uuid.UUID | None = None, enabled: bool | None = None
) -> list[DeploymentInfo]:
    rows = Deployment.objects.select_related("provider").order_by("provider__name", "name")
    if provider_id is not None:
        rows = rows.filter(provider_id=provider_id)
    if enabled is not None:
        rows = rows.filter(enabled=enabled)
    providers: dict[uuid.UUID, ProviderDTO] = {}
    found = []
    for row in rows:
        provider = providers.get(row.provider_id)
        if provider is None:
            provider = providers[row.provider_id] = provider_dto(row.provider)
        found.append(deployment_info(row, provider))
    return found


def deployment_get(
    *, deployment_id: uuid.UUID, provider_id: uuid.UUID | None = None
) -> DeploymentInfo | None:
    """The deployment, if it exists (and belongs to ``provider_id`` when given)."""
    rows = Deployment.objects.select_related("provider").filter(pk=deployment_id)
    if provider_id is not None:
        rows = rows.filter(provider_id=provider_id)
    deployment = rows.first()
    return deployment_info(deployment) if deployment is not None else None


def capabilities_list(*, provider_id: uuid.UUID | None = None) -> list[CapabilityReport]:
    """Per deployment: the capabilities declared, and what the probe verified (with latency)."""
    return [
        CapabilityReport(
            deployment_id=info.id,
            provider_id=info.provider.id,
            provider_name=info.provider.name,
            name=info.name,
            qualified_name=info.qualified_name,
            enabled=info.usable,
            declared=tuple(sorted(info.capabilities)),
            verified=info.verified,
        )
        for info in deployment_list(provider_id=provider_id)
    ]


def price_find(*, upstream_model: str, kind: ProviderKind | str) -> Price | None:
    """The imported price for a model as a provider of ``kind`` serves it, if any.

    Preference: the model's own name from this kind's provider, then LiteLLM's
    ``<provider>/<model>`` key, then the bare name from anyone.
    """
    names = kind_provider_names(kind)
    keys = [upstream_model, *(f"{name}/{upstream_model}" for name in names)]
    rows = {row.model: row for row in Price.objects.filter(model__in=keys)}
    bare = rows.get(upstream_model)
    if bare is not None and bare.provider in names:
        return bare
    for name in names:
        prefixed = rows.get(f"{name}/{upstream_model}")
        if prefixed is not None:
            return prefixed
    return bare


def price_list(*, provider: str | None = None) -> list[Price]:
    rows = Price.objects.order_by("model")
    return list(rows.filter(provider=provider) if provider else rows)


# --- The catalogue ----------------------------------------------------------------------


class _Local:
    """This process's snapshot, with the shared version it was built for."""

    __slots__ = ("checked_at", "generation", "snapshot")

    def __init__(self) -> None:
        self.snapshot: Catalogue | None = None
        self.checked_at = float("-inf")
        # Bumped by every local invalidation, so that a build which started before one
        # is returned to its caller but never installed.
        self.generation = 0


_local = _Local()
_build_lock = threading.RLock()


def _fresh() -> Catalogue | None:
    """The snapshot, if its shared version was checked within the interval."""
    snapshot = _local.snapshot
    if snapshot is not None and time.monotonic() - _local.checked_at < SHARED_VERSION_CHECK_SECONDS:
        return snapshot
    return None


def catalogue() -> Catalogue:
    """Every provider and deployment as frozen DTOs; cheap when fresh (a clock read).

    Disabled ones are included (``Catalogue.resolve`` leaves them out), so that callers
    can tell "disabled" from "unknown".
    """
    snapshot = _fresh()
    if snapshot is not None:
        return snapshot
    return _refresh()


async def catalogue_async() -> Catalogue:
    """``catalogue()`` for async code: a fresh snapshot is returned on the event loop;
    the once-a-second version check, and a rebuild, run in a worker thread (the ORM may
    not run on the event loop)."""
    snapshot = _fresh()
    if snapshot is not None:
        return snapshot
    return await sync_to_async(_refresh, thread_sensitive=False)()


def _shared_version() -> int:
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            # A fresh cache: start from a number no process can have seen before.
            cache.add(VERSION_KEY, time.time_ns(), timeout=None)
            version = cache.get(VERSION_KEY)
    except Exception:  # a cache outage must not take the gateway down: rebuild instead
        logger.warning("catalogue version unreadable", exc_info=True)
        return -1
    return int(version) if version is not None else -1


def _refresh() -> Catalogue:
    with _build_lock:
        snapshot = _fresh()
        if snapshot is not None:
            return snapshot  # refreshed while this call waited for the lock
        generation = _local.generation
        version = _shared_version()  # read before the database: a later bump wins
        snapshot = _local.snapshot
        if snapshot is not None and version == snapshot.version and version != -1:
            _local.checked_at = time.monotonic()
            return snapshot
        built = _build(version)
        if generation == _local.generation:
            _local.snapshot = built
            _local.checked_at = time.monotonic()
        return built


def _build(version: int) -> Catalogue:
    providers = {row.id: provider_dto(row) for row in Provider.objects.order_by("name")}
    deployments = tuple(
        deployment_dto(row, providers[row.provider_id])
        for row in Deployment.objects.order_by("provider__name", "name")
        if row.provider_id in providers
    )
    _forget_missing(set(providers))
    return Catalogue(providers=tuple(providers.values()), deployments=deployments, version=version)


def _forget_missing(provider_ids: set[uuid.UUID]) -> None:
    # A provider deleted by another process: its decrypted key leaves this one too.
    for provider_id in {key[0] for key in list(_secrets)} - provider_ids:
        endpoint_forget(provider_id)


def catalogue_invalidate() -> None:
    """Drop this process's catalogue now, and make every other one rebuild within a second."""
    try:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # no version yet (or evicted): any fresh number will do
            cache.set(VERSION_KEY, time.time_ns(), timeout=None)
    except Exception:
        logger.warning("catalogue version not shared", exc_info=True)
    catalogue_clear_local()


def catalogue_clear_local() -> None:
    """Drop this process's snapshot without telling others (tests, a new process)."""
    with _build_lock:
        _local.snapshot = None
        _local.checked_at = float("-inf")
        _local.generation += 1


# --- Endpoints (decrypted keys) ---------------------------------------------------------

# (provider_id, revision) -> plaintext key; only the newest revision of each provider.
_secrets: dict[tuple[uuid.UUID, int], str | None] = {}
# (deployment_id, revision, upstream_model) -> Endpoint
_endpoints: dict[tuple[uuid.UUID, int, str], Endpoint] = {}
_secret_locks: dict[uuid.UUID, threading.Lock] = {}
_secrets_lock = threading.Lock()
MAX_CACHED_ENDPOINTS = 10_000


def endpoint_for(deployment: DeploymentDTO) -> Endpoint:
    """Where and how to call ``deployment``, with its provider's decrypted API key.

    Warm (key already decrypted for this provider revision): a dict look-up, no I/O.
    Cold (the first call per provider revision in this process): a database read and an
    audited decryption (~13 ms), both synchronous; from async code use
    ``endpoint_for_async``. Raises ``NotFoundError`` if the provider has been deleted.
    """
    provider = deployment.provider
    endpoint = _endpoints.get((deployment.id, provider.revision, deployment.upstream_model))
    if endpoint is not None:
        return endpoint
    return _endpoint_build(deployment)


async def endpoint_for_async(deployment: DeploymentDTO) -> Endpoint:
    """``endpoint_for`` for async code: the warm path stays on the event loop, and only
    the cold path (database and decryption) runs in a worker thread."""
    provider = deployment.provider
    endpoint = _endpoints.get((deployment.id, provider.revision, deployment.upstream_model))
    if endpoint is not None:
        return endpoint
    return await sync_to_async(_endpoint_build, thread_sensitive=False)(deployment)


def _endpoint_build(deployment: DeploymentDTO) -> Endpoint:
    provider = deployment.provider
    api_key = _secret(provider) if provider.has_api_key else None
    endpoint = Endpoint(
        provider_id=provider.id,
        provider_name=provider.name,
        kind=provider.kind,
        base_url=provider.base_url,
        model=deployment.upstream_model,
        api_key=api_key,
        connect_timeout=provider.connect_timeout,
        read_timeout=provider.read_timeout,
        api_version=provider.api_version,
    )
    if len(_endpoints) >= MAX_CACHED_ENDPOINTS:
        _endpoints.clear()
    _endpoints[(deployment.id, provider.revision, deployment.upstream_model)] = endpoint
    return endpoint


def _secret(provider: ProviderDTO) -> str | None:
    key = (provider.id, provider.revision)
    try:
        return _secrets[key]
    except KeyError:
        pass
    with _secrets_lock:
        lock = _secret_locks.setdefault(provider.id, threading.Lock())
    with lock:  # one decryption per provider revision, however many callers are waiting
        if key in _secrets:
            return _secrets[key]
        row = Provider.objects.filter(pk=provider.id).values_list("api_key", "revision").first()
        if row is None:
            raise NotFoundError(
                f"Provider {provider.name} no longer exists.",
                fields={"provider": ["no longer exists"]},
                code="provider_not_found",
            )
        ciphertext, revision = row
        owner = f"providers.provider:{provider.id}"
        plaintext = (
            decrypt_secret(ciphertext, owner=owner, actor=SYSTEM_ACTOR) if ciphertext else None
        )
        with _secrets_lock:
            for stale in [k for k in _secrets if k[0] == provider.id]:
                del _secrets[stale]
            # Stored under the revision read with the key, and under the one asked for if
            # that is older (a catalogue a moment stale): both map to the newest key.
            _secrets[(provider.id, revision)] = plaintext
            _secrets[key] = plaintext
        return plaintext


def endpoint_forget(provider_id: uuid.UUID) -> None:
    """Drop a provider's decrypted key and endpoints from this process (it was removed)."""
    with _secrets_lock:
        for stale in [k for k in _secrets if k[0] == provider_id]:
            del _secrets[stale]
        for stale in [k for k, e in _endpoints.items() if e.provider_id == provider_id]:
            _endpoints.pop(stale, None)
        _secret_locks.pop(provider_id, None)


def endpoint_cache_clear() -> None:
    """Forget every decrypted key in this process (tests)."""
    with _secrets_lock:
        _secrets.clear()
        _endpoints.clear()
        _secret_locks.clear()
