"""Registry use-cases: providers and their models (deployments), prices.

Every write is authorised, validated with ``full_clean`` and publishes its event in
its transaction. API keys are sealed with ``security.api.encrypt_secret`` before they
are stored, and shredded with ``forget_secret`` when replaced, removed or deleted;
they never appear in events, errors or return values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import pathlib
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import structlog
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from lumina.kernel import outbound
from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, ConflictError, NotFoundError
from lumina.providers import pricing
from lumina.providers.events.registry import ProviderAdded, ProviderRemoved, ProviderUpdated
from lumina.providers.models.registry import Deployment, Price, Provider
from lumina.providers.pricing import PriceRow, PricingFormatError
from lumina.providers.selectors.registry import (
    DeploymentInfo,
    catalogue_invalidate,
    deployment_info,
    price_find,
    provider_dto,
)
from lumina.providers.types import Capability, Prices, ProviderDTO, ProviderKind
from lumina.security.api import (
    Actor,
    Resource,
    authorize,
    encrypt_secret,
    forget_secret,
    require,
)

logger = structlog.get_logger(__name__)

PROVIDER_RESOURCE = "providers.provider"
# Settings that decide where the stored API key is sent: the host (base_url), and the
# header and path it travels in (kind). api_version is a query parameter on the same host.
DESTINATION_FIELDS = ("base_url", "kind")
# Who may send the stored key to a new destination without giving it again: whoever may
# read it anyway.
DECRYPT_PERMISSION = "security.secrets.decrypt"
# provider_update's ``api_key`` when the caller does not touch the key.
API_KEY_UNCHANGED: Any = object()
MAX_API_KEY_LENGTH = 4096
PROVIDER_FIELDS = (
    "name", "kind", "base_url", "enabled", "priority", "weight", "max_concurrency",
    "connect_timeout", "read_timeout", "api_version", "tags",
)  # fmt: skip
PRICE_FIELDS = (
    "input_price", "cached_input_price", "cache_write_price", "output_price", "reasoning_price",
)  # fmt: skip
DEPLOYMENT_FIELDS = (
    "name", "upstream_model", "aliases", "capabilities", "context_window", "max_output_tokens",
    *PRICE_FIELDS, "price_source", "enabled", "tags",
)  # fmt: skip
PRICE_TABLE_FIELDS = (
    "provider", "mode", *PRICE_FIELDS, "context_window", "max_output_tokens", "capabilities",
    "source", "updated_at",
)  # fmt: skip
DEFAULT_CAPABILITIES = (Capability.CHAT, Capability.STREAMING)
DEFAULT_CONTEXT_WINDOW = 8192
MANUAL = "manual"


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """What ``prices_import`` did: price-table rows added, updated, unchanged and skipped,
    and how many deployments took the new prices (those not priced by hand)."""

    format: str
    source: str
    added: int
    updated: int
    unchanged: int
    skipped: tuple[tuple[str, str], ...]  # (entry, reason)
    deployments_repriced: int


# --- Helpers ----------------------------------------------------------------------------


def _resource(provider_id: uuid.UUID | None) -> Resource | None:
    return Resource(PROVIDER_RESOURCE, str(provider_id)) if provider_id else None


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, fields={field: [message]}, code="invalid")


def _error_from(error: ValidationError, *, entity: str) -> ApplicationError:
    """A model validation error as an ``ApplicationError`` naming the fields.

    A taken name is a conflict (409); everything else is invalid input (400).
    """
    fields: dict[str, list[str]] = {}
    duplicate = False
    for field, errors in error.error_dict.items() if hasattr(error, "error_dict") else ():
        for item in errors:
            name = "non_field_errors" if field == NON_FIELD_ERRORS else field
            if item.code in ("unique", "unique_together") and field in ("name", NON_FIELD_ERRORS):
                # The only uniqueness rules here are names (per provider for models).
                duplicate, name = True, "name"
            fields.setdefault(name, []).extend(item.messages)
    if not fields:
        fields["non_field_errors"] = list(error.messages)
    if duplicate:
        return ConflictError(f"A {entity} with this name already exists.", fields=fields)
    return ApplicationError("Invalid input.", fields=fields, code="invalid")


def _full_clean(instance: Provider | Deployment | Price, *, entity: str, **options: Any) -> None:
    try:
        instance.full_clean(**options)
    except ValidationError as error:
        raise _error_from(error, entity=entity) from None


def _invalidate() -> None:
    # Now, so this process's next read sees the change, and again on commit, so that a
    # snapshot another thread built from the uncommitted state is dropped as well.
    catalogue_invalidate()
    transaction.on_commit(catalogue_invalidate)


def api_key_check(api_key: object) -> str:
    # Messages never repeat the key.
    if not isinstance(api_key, str):
        raise _invalid("api_key", "The API key must be a string.")
    if not api_key:
        raise _invalid("api_key", "The API key may not be blank; use null to remove it.")
    if len(api_key) > MAX_API_KEY_LENGTH:
        raise _invalid("api_key", f"The API key may have at most {MAX_API_KEY_LENGTH} characters.")
    if any(char.isspace() or not char.isprintable() for char in api_key):
        raise _invalid("api_key", "The API key may not contain spaces or control characters.")
    return api_key


def key_required_problems(
    *, actor: Actor, has_stored_key: bool, changed: Iterable[str], api_key: object
) -> dict[str, list[str]]:
    """Field errors when a change would send the stored API key somewhere new without the
    key being given again (or removed) in the same change; empty when it may go ahead.

    Otherwise anyone who may change a provider could point it at a server of theirs and
    receive the key they may not read, with the next request (the key is kept sealed and
    sent as it is). Holders of ``security.secrets.decrypt`` may, as they can read it anyway.
    """
    moved = [name for name in DESTINATION_FIELDS if name in changed]
    if not moved or not has_stored_key or api_key is not API_KEY_UNCHANGED:
        return {}
    if authorize(actor, DECRYPT_PERMISSION).allowed:
        return {}
    where = " and ".join(moved)
    message = (
        f"Changing {where} changes where the stored API key is sent: give the key again "
        "(api_key) in the same change, or remove it (null)."
    )
    problems = {name: [message] for name in moved}
    problems["api_key"] = [f"Required when {where} changes."]
    return problems


def base_url_check(base_url: str) -> None:
    """``OutboundRefused`` (a 400 naming ``base_url``) unless the outbound guard lets Lumina
    call this URL's host; checked whenever a base URL is set."""
    if not base_url:
        return
    host = urlsplit(base_url).hostname
    if host and (problem := outbound.host_problem(host)):
        raise outbound.OutboundRefused("base_url", problem)


def _kind(kind: object) -> str:
    try:
        return ProviderKind(kind).value
    except ValueError:
        choices = ", ".join(k.value for k in ProviderKind)
        raise _invalid("kind", f"Unknown kind {str(kind)[:50]!r}; use one of {choices}.") from None


def _capabilities(capabilities: Iterable[object], field: str = "capabilities") -> list[str]:
    if isinstance(capabilities, str):
        raise _invalid(field, "Give a list of capabilities.")
    found: list[str] = []
    for capability in capabilities:
        try:
            value = Capability(capability).value
        except ValueError:
            choices = ", ".join(c.value for c in Capability)
            raise _invalid(
                field, f"Unknown capability {str(capability)[:50]!r}; use {choices}."
            ) from None
        if value not in found:
            found.append(value)
    return found


def _strings(values: Iterable[object] | None, field: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not all(isinstance(value, str) for value in values):
        raise _invalid(field, "Give a list of strings.")
    return list(dict.fromkeys(values))  # type: ignore[arg-type]


def _decimal(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _invalid(field, "Enter a number.")
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(value)  # type: ignore[arg-type]
    except (ArithmeticError, TypeError, ValueError):
        raise _invalid(field, "Enter a number.") from None
    if not number.is_finite():
        raise _invalid(field, "Enter a finite number.")
    return number


def _provider_locked(provider_id: uuid.UUID) -> Provider:
    provider = Provider.objects.select_for_update().filter(pk=provider_id).first()
    if provider is None:
        raise NotFoundError("No such provider.", fields={"provider": ["not found"]})
    return provider


def _save_new(instance: Provider | Deployment, *, entity: str) -> None:
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError:  # lost a race for the name after full_clean checked it
        raise ConflictError(
            f"A {entity} with this name already exists.",
            fields={"name": [f"A {entity} with this name already exists."]},
        ) from None


def _updated(
    provider: Provider,
    actor: Actor | None,
    changed: Iterable[str],
    deployment_id: uuid.UUID | None = None,
) -> None:
    publish(
        ProviderUpdated(
            provider_id=provider.id,
            provider_name=provider.name,
            provider_kind=provider.kind,
            revision=provider.revision,
            changed=tuple(changed),
            deployment_id=deployment_id,
            actor_id=actor.user_id if actor else None,
        )
    )


# --- Providers --------------------------------------------------------------------------


def provider_create(
    *,
    actor: Actor,
    name: str,
    kind: ProviderKind | str,
    base_url: str = "",
    api_key: str | None = None,
    enabled: bool = True,
    priority: int = 0,
    weight: int = 1,
    max_concurrency: int = 64,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    api_version: str | None = "",
    tags: Iterable[str] = (),
) -> ProviderDTO:
    """Register a provider; ``api_key`` (None for none) is stored only encrypted."""
    require(actor, "providers.add")
    if api_key is not None:
        api_key_check(api_key)
    provider = Provider(
        id=uuid.uuid4(),
        name=name,
        kind=_kind(kind),
        base_url=base_url or "",
        enabled=enabled,
        priority=priority,
        weight=weight,
        max_concurrency=max_concurrency,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        api_version=api_version or "",
        tags=_strings(tags, "tags"),
    )
    _full_clean(provider, entity="provider")
    base_url_check(provider.base_url)
    with transaction.atomic():
        if api_key is not None:
            provider.api_key = encrypt_secret(api_key, owner=provider.secret_owner)
        _save_new(provider, entity="provider")
        publish(
            ProviderAdded(
                provider_id=provider.id,
                provider_name=provider.name,
                provider_kind=provider.kind,
                actor_id=actor.user_id,
            )
        )
        _invalidate()
    logger.info("provider added", provider=provider.name, kind=provider.kind)
    return provider_dto(provider)


def provider_update(
    *,
    actor: Actor,
    provider_id: uuid.UUID,
    api_key: str | None = API_KEY_UNCHANGED,
    **changes: Any,
) -> ProviderDTO:
    """Change the given settings (``PROVIDER_FIELDS``) and bump the provider's revision.

    ``api_key``: leave it out to keep the stored key, pass a new key to replace it (the
    old one is shredded), or pass ``None`` to remove it. A blank key is refused rather
    than guessed at. A change of ``DESTINATION_FIELDS`` must give or remove the key
    unless the actor may decrypt secrets (``key_required_problems``).
    """
    unknown = set(changes) - set(PROVIDER_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")
    require(actor, "providers.change", _resource(provider_id))
    if api_key is not API_KEY_UNCHANGED and api_key is not None:
        api_key_check(api_key)
    if "kind" in changes:
        changes["kind"] = _kind(changes["kind"])
    if "tags" in changes:
        changes["tags"] = _strings(changes["tags"], "tags")
    if "api_version" in changes:
        changes["api_version"] = changes["api_version"] or ""
    if "base_url" in changes:
        changes["base_url"] = changes["base_url"] or ""
    with transaction.atomic():
        provider = _provider_locked(provider_id)
        changed = [name for name, value in changes.items() if getattr(provider, name) != value]
        problems = key_required_problems(
            actor=actor, has_stored_key=provider.has_api_key, changed=changed, api_key=api_key
        )
        if problems:
            logger.warning(
                "provider destination change refused without the key",
                provider=provider.name,
                changed=changed,
                actor_id=str(actor.user_id),
            )
            raise ApplicationError(
                next(iter(problems.values()))[0], fields=problems, code="api_key_required"
            )
        for name in changed:
            setattr(provider, name, changes[name])
        _full_clean(provider, entity="provider")
        if "base_url" in changed:
            base_url_check(provider.base_url)
        owner = provider.secret_owner
        if api_key is not API_KEY_UNCHANGED and (api_key is not None or provider.api_key):
            old = provider.api_key
            provider.api_key = encrypt_secret(api_key, owner=owner) if api_key else ""
            if old:
                # Shred the old key's data key: its ciphertext can never be opened again.
                forget_secret(owner, ciphertext=old)
            changed.append("api_key")
        if not changed:
            return provider_dto(provider)
        provider.revision += 1
        provider.save()
        _updated(provider, actor, changed)
        _invalidate()
    logger.info("provider updated", provider=provider.name, changed=changed)
    return provider_dto(provider)


def provider_delete(*, actor: Actor, provider_id: uuid.UUID) -> None:
    """Remove a provider and its models, and shred its API key."""
    require(actor, "providers.delete", _resource(provider_id))
    with transaction.atomic():
        provider = _provider_locked(provider_id)
        forget_secret(provider.secret_owner)
        publish(
            ProviderRemoved(
                provider_id=provider.id,
                provider_name=provider.name,
                provider_kind=provider.kind,
                actor_id=actor.user_id,
            )
        )
        provider.delete()
        _invalidate()
    logger.info("provider removed", provider=provider.name)


# --- Deployments (a provider's models) --------------------------------------------------


def _table_row(upstream_model: str, kind: str) -> tuple[PriceRow, str] | None:
    """Prices for a model from the imported table, else from the shipped file."""
    stored = price_find(upstream_model=upstream_model, kind=kind)
    if stored is not None:
        row = PriceRow(
            model=stored.model,
            provider=stored.provider,
            mode=stored.mode,
            prices=Prices(
                input=stored.input_price,
                output=stored.output_price,
                cached_input=stored.cached_input_price,
                cache_write=stored.cache_write_price,
                reasoning=stored.reasoning_price,
            ),
            context_window=stored.context_window,
            max_output_tokens=stored.max_output_tokens,
            capabilities=frozenset(Capability(c) for c in stored.capabilities),
        )
        return row, stored.source
    shipped = pricing.shipped()
    row = shipped.by_model.get(upstream_model)
    return (row, shipped.source) if row is not None else None


def _apply_prices(deployment: Deployment, prices: Prices, source: str) -> None:
    deployment.input_price = prices.input
    deployment.output_price = prices.output
    deployment.cached_input_price = prices.cached_input
    deployment.cache_write_price = prices.cache_write
    deployment.reasoning_price = prices.reasoning
    deployment.price_source = source


def _same_prices(deployment: Deployment, prices: Prices) -> bool:
    return (
        deployment.input_price,
        deployment.output_price,
        deployment.cached_input_price,
        deployment.cache_write_price,
        deployment.reasoning_price,
    ) == (prices.input, prices.output, prices.cached_input, prices.cache_write, prices.reasoning)


def deployment_create(
    *,
    actor: Actor,
    provider_id: uuid.UUID,
    name: str,
    upstream_model: str | None = None,
    aliases: Iterable[str] = (),
    capabilities: Iterable[Capability | str] | None = None,
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    input_price: Decimal | str | int | None = None,
    cached_input_price: Decimal | str | int | None = None,
    cache_write_price: Decimal | str | int | None = None,
    output_price: Decimal | str | int | None = None,
    reasoning_price: Decimal | str | int | None = None,
    price_source: str | None = None,
    enabled: bool = True,
    tags: Iterable[str] = (),
) -> DeploymentInfo:
    """Add a model to a provider.

    ``upstream_model`` defaults to ``name``. Without any price, the prices (and any of
    capabilities, context window and max output left out) come from the imported price
    table or the shipped one when they know the upstream model, and ``price_source``
    says which; otherwise prices are zero and capabilities ``chat`` and ``streaming``.
    Given prices are ``manual`` unless ``price_source`` says otherwise.
    """
    require(actor, "providers.change", _resource(provider_id))
    given = {
        "input_price": _decimal(input_price, "input_price"),
        "cached_input_price": _decimal(cached_input_price, "cached_input_price"),
        "cache_write_price": _decimal(cache_write_price, "cache_write_price"),
        "output_price": _decimal(output_price, "output_price"),
        "reasoning_price": _decimal(reasoning_price, "reasoning_price"),
    }
    with transaction.atomic():
        provider = _provider_locked(provider_id)
        deployment = Deployment(
            id=uuid.uuid4(),
            provider=provider,
            name=name,
            upstream_model=upstream_model or name,
            aliases=_strings(aliases, "aliases"),
            max_output_tokens=max_output_tokens,
            enabled=enabled,
            tags=_strings(tags, "tags"),
        )
        table = (
            _table_row(deployment.upstream_model, provider.kind)
            if isinstance(deployment.upstream_model, str)
            else None
        )
        if any(value is not None for value in given.values()):
            for field, value in given.items():
                setattr(deployment, field, value)
            deployment.input_price = deployment.input_price or Decimal(0)
            deployment.output_price = deployment.output_price or Decimal(0)
            deployment.price_source = price_source or MANUAL
        elif table is not None:
            _apply_prices(deployment, table[0].prices, price_source or table[1])
        else:
            deployment.price_source = price_source or MANUAL
        row = table[0] if table is not None else None
        if capabilities is None:
            capabilities = row.capabilities if row and row.capabilities else DEFAULT_CAPABILITIES
        deployment.capabilities = _capabilities(capabilities)
        if context_window is None:
            context_window = (row.context_window if row else None) or DEFAULT_CONTEXT_WINDOW
        deployment.context_window = context_window
        if max_output_tokens is None and row is not None:
            deployment.max_output_tokens = row.max_output_tokens
        _full_clean(deployment, entity="model of this provider")
        _save_new(deployment, entity="model of this provider")
        _updated(provider, actor, ["models"], deployment.id)
        _invalidate()
    logger.info("model added", provider=provider.name, model=deployment.name)
    return deployment_info(deployment, provider_dto(provider))


def _deployment_locked(deployment_id: uuid.UUID, provider_id: uuid.UUID | None) -> Deployment:
    rows = Deployment.objects.select_for_update().select_related("provider")
    if provider_id is not None:
        rows = rows.filter(provider_id=provider_id)
    deployment = rows.filter(pk=deployment_id).first()
    if deployment is None:
        raise NotFoundError("No such model.", fields={"model": ["not found"]})
    return deployment


def _provider_of(deployment_id: uuid.UUID, provider_id: uuid.UUID | None) -> uuid.UUID | None:
    if provider_id is not None:
        return provider_id
    return Deployment.objects.filter(pk=deployment_id).values_list("provider_id", flat=True).first()


def deployment_update(
    *,
    actor: Actor,
    deployment_id: uuid.UUID,
    provider_id: uuid.UUID | None = None,
    **changes: Any,
) -> DeploymentInfo:
    """Change the given fields (``DEPLOYMENT_FIELDS``) of a model.

    With ``provider_id``, the model must belong to that provider. Changed prices become
    ``manual`` unless ``price_source`` is changed with them.
    """
    unknown = set(changes) - set(DEPLOYMENT_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")
    require(actor, "providers.change", _resource(_provider_of(deployment_id, provider_id)))
    for field in PRICE_FIELDS:
        if field in changes:
            changes[field] = _decimal(changes[field], field)
    for field in ("aliases", "tags"):
        if field in changes:
            changes[field] = _strings(changes[field], field)
    if "capabilities" in changes:
        changes["capabilities"] = _capabilities(changes["capabilities"])
    with transaction.atomic():
        deployment = _deployment_locked(deployment_id, provider_id)
        changed = [name for name, value in changes.items() if getattr(deployment, name) != value]
        for name in changed:
            setattr(deployment, name, changes[name])
        if any(name in PRICE_FIELDS for name in changed) and "price_source" not in changes:
            deployment.price_source = MANUAL
        if not changed:
            return deployment_info(deployment)
        _full_clean(deployment, entity="model of this provider")
        deployment.save()
        _updated(deployment.provider, actor, ["models"], deployment.id)
        _invalidate()
    logger.info("model updated", model=str(deployment), changed=changed)
    return deployment_info(deployment)


def deployment_delete(
    *, actor: Actor, deployment_id: uuid.UUID, provider_id: uuid.UUID | None = None
) -> None:
    require(actor, "providers.change", _resource(_provider_of(deployment_id, provider_id)))
    with transaction.atomic():
        deployment = _deployment_locked(deployment_id, provider_id)
        _updated(deployment.provider, actor, ["models"], deployment.id)
        deployment.delete()
        _invalidate()
    logger.info("model removed", model=deployment.name)


def deployment_record_probe(
    *,
    deployment_id: uuid.UUID,
    results: Mapping[str, Mapping[str, Any]],
    actor: Actor | None = None,
) -> DeploymentInfo:
    """Store what a probe found, per capability: ``{"ok", "latency_ms", "checked_at", "error"}``.

    Capabilities not in ``results`` keep their earlier findings. The probe runs as the
    system; pass ``actor`` to have a person's permission checked (``providers.change``).
    """
    if actor is not None:
        require(actor, "providers.change", _resource(_provider_of(deployment_id, None)))
    if not isinstance(results, Mapping):
        raise _invalid("results", "Give an object keyed by capability.")
    now = dt.datetime.now(dt.UTC).isoformat()
    cleaned: dict[str, dict[str, Any]] = {}
    for capability, result in results.items():
        key = _capabilities([capability], "results")[0]
        if not isinstance(result, Mapping) or not isinstance(result.get("ok"), bool):
            raise _invalid("results", f"{key}: give an object with a boolean 'ok'.")
        latency = result.get("latency_ms")
        if latency is not None and (
            isinstance(latency, bool)
            or not isinstance(latency, int | float)
            or not math.isfinite(latency)
            or latency < 0
        ):
            raise _invalid("results", f"{key}: latency_ms must be a non-negative number.")
        cleaned[key] = {
            "ok": result["ok"],
            "latency_ms": round(float(latency), 3) if latency is not None else None,
            "checked_at": str(result.get("checked_at") or now),
            "error": str(result.get("error") or "")[:500],
        }
    with transaction.atomic():
        deployment = _deployment_locked(deployment_id, None)
        deployment.verified_capabilities = {**(deployment.verified_capabilities or {}), **cleaned}
        deployment.save(update_fields=["verified_capabilities", "updated_at"])
        _updated(deployment.provider, actor, ["models"], deployment.id)
        _invalidate()
    return deployment_info(deployment)


# --- Prices -----------------------------------------------------------------------------


def _table(path_or_data: str | pathlib.Path | bytes | Mapping[str, Any], fmt: str):
    try:
        data = (
            pricing.read(path_or_data)
            if isinstance(path_or_data, str | pathlib.Path)
            else path_or_data
        )
        return pricing.parse(data, format=fmt)
    except PricingFormatError as error:
        raise _invalid(error.field, str(error)) from None


def _price_values(row: PriceRow, source: str) -> dict[str, Any]:
    return {
        "provider": row.provider[:64],
        "mode": row.mode,
        "input_price": row.prices.input,
        "cached_input_price": row.prices.cached_input,
        "cache_write_price": row.prices.cache_write,
        "output_price": row.prices.output,
        "reasoning_price": row.prices.reasoning,
        "context_window": row.context_window,
        "max_output_tokens": row.max_output_tokens,
        "capabilities": sorted(c.value for c in row.capabilities),
        "source": source,
    }


def prices_import(
    *,
    actor: Actor,
    path_or_data: str | pathlib.Path | bytes | Mapping[str, Any],
    format: str = "auto",
) -> ImportReport:
    """Load a price table (a file path, JSON bytes or decoded JSON) into the price list.

    ``format``: ``auto``, ``lumina`` (our shipped ``prices.json``) or ``litellm``
    (``model_prices_and_context_window.json``). Bad entries are skipped and reported.
    Deployments whose prices came from a table (not ``manual``) take the new prices.
    """
    require(actor, "providers.change")
    table = _table(path_or_data, format)
    rows = {row.model: row for row in table.rows}  # a later entry for a name wins
    added = updated = unchanged = 0
    skipped = list(table.skipped)
    with transaction.atomic():
        existing = {
            price.model: price for price in Price.objects.select_for_update().filter(model__in=rows)
        }
        to_create: list[Price] = []
        to_update: list[Price] = []
        for model, row in rows.items():
            values = _price_values(row, table.source)
            price = existing.get(model)
            if price is None:
                price = Price(id=uuid.uuid4(), model=model, **values)
            elif all(getattr(price, k) == v for k, v in values.items()):
                unchanged += 1
                continue
            else:
                for field, value in values.items():
                    setattr(price, field, value)
                price.updated_at = timezone.now()  # bulk_update skips auto_now
            try:
                price.clean_fields()
            except ValidationError as error:
                skipped.append((model, "; ".join(error.messages)))
                continue
            (to_update if price.model in existing else to_create).append(price)
        Price.objects.bulk_create(to_create, batch_size=500)
        if to_update:
            Price.objects.bulk_update(to_update, PRICE_TABLE_FIELDS, batch_size=500)
        added, updated = len(to_create), len(to_update)
        repriced = _reprice(actor, rows)
        if added or updated or repriced:
            _invalidate()
    logger.info(
        "prices imported",
        format=table.format,
        added=added,
        updated=updated,
        skipped=len(skipped),
        repriced=repriced,
    )
    return ImportReport(
        format=table.format,
        source=table.source,
        added=added,
        updated=updated,
        unchanged=unchanged,
        skipped=tuple(skipped),
        deployments_repriced=repriced,
    )


def _reprice(actor: Actor, rows: Mapping[str, PriceRow]) -> int:
    """Give deployments priced from a table the prices now in force for their model."""
    upstream = set(rows) | {model.split("/", 1)[1] for model in rows if "/" in model}
    candidates = (
        Deployment.objects.select_for_update()
        .select_related("provider")
        .filter(upstream_model__in=upstream)
        .exclude(price_source=MANUAL)
    )
    touched: dict[uuid.UUID, Provider] = {}
    repriced = 0
    for deployment in candidates:
        found = _table_row(deployment.upstream_model, deployment.provider.kind)
        if found is None:
            continue
        row, source = found
        if _same_prices(deployment, row.prices) and deployment.price_source == source:
            continue
        _apply_prices(deployment, row.prices, source)
        _full_clean(deployment, entity="model", validate_unique=False, validate_constraints=False)
        deployment.save(update_fields=[*PRICE_FIELDS, "price_source", "updated_at"])
        touched[deployment.provider_id] = deployment.provider
        repriced += 1
    for provider in touched.values():
        _updated(provider, actor, ["models"])
    return repriced
