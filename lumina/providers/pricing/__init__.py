"""Pricing tables: Lumina's shipped, dated ``prices.json`` and LiteLLM's format, parsed exactly.

Plain Python beside the rooms (no models): the registry services store what this reads.
Numbers are read as ``Decimal`` straight from the JSON text, so LiteLLM's per-token
``1.5e-07`` becomes exactly ``0.15`` per million tokens, with no float in between.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from lumina.providers.types import MILLION, Capability, Prices, ProviderKind

__all__ = [
    "FORMATS",
    "SHIPPED_PATH",
    "PriceRow",
    "PriceTable",
    "PricingFormatError",
    "describe",
    "kind_provider_names",
    "parse",
    "read",
    "shipped",
]

SHIPPED_PATH = pathlib.Path(__file__).with_name("prices.json")
LUMINA_FORMAT = "lumina-prices"
FORMATS = ("auto", "lumina", "litellm")
# Stored prices keep ten decimal places per million tokens (a ten-thousandth of a
# micro-dollar per token); LiteLLM's table never needs more.
PLACES = Decimal("1e-10")
MAX_PRICE = Decimal(10_000_000)  # per million tokens: anything above is a typo
MAX_TOKENS = 2**31 - 1

# LiteLLM modes priced per token that a deployment here can serve.
LITELLM_MODES = {
    "chat": "chat",
    "completion": "chat",
    "responses": "chat",
    "embedding": "embedding",
}
LITELLM_CAPABILITIES = {
    "supports_function_calling": Capability.TOOLS,
    "supports_vision": Capability.VISION,
    "supports_response_schema": Capability.JSON_MODE,
}
# What LiteLLM's ``litellm_provider`` calls each kind's provider (``openai_compatible``
# servers host anyone's models, so no one name fits them).
_KIND_PROVIDERS: dict[ProviderKind, tuple[str, ...]] = {
    ProviderKind.OPENAI: ("openai", "text-completion-openai"),
    ProviderKind.ANTHROPIC: ("anthropic",),
    ProviderKind.AZURE_OPENAI: ("azure", "azure_text"),
    ProviderKind.OLLAMA: ("ollama", "ollama_chat"),
    ProviderKind.OPENAI_COMPATIBLE: (),
    ProviderKind.LOCAL: ("local",),
}


class PricingFormatError(ValueError):
    """The table as a whole cannot be read; ``field`` names what is wrong."""

    def __init__(self, message: str, *, field: str = "file") -> None:
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class PriceRow:
    """One model's prices per million tokens, and what the table says about the model."""

    model: str
    provider: str
    mode: str  # "chat" or "embedding"
    prices: Prices
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: frozenset[Capability] = frozenset()


@dataclasses.dataclass(frozen=True)
class PriceTable:
    """A parsed table: its rows, the ``price_source`` label they carry, and what was skipped."""

    format: str  # "lumina" or "litellm"
    source: str  # e.g. "lumina-2026-11-01" or "litellm"
    rows: tuple[PriceRow, ...]
    skipped: tuple[tuple[str, str], ...]  # (entry, reason)
    updated: str | None = None

    @functools.cached_property
    def by_model(self) -> dict[str, PriceRow]:
        return {row.model: row for row in self.rows}


def kind_provider_names(kind: ProviderKind | str) -> tuple[str, ...]:
    return _KIND_PROVIDERS.get(ProviderKind(kind), ())


# --- Reading ----------------------------------------------------------------------------


def read(path: str | pathlib.Path) -> Any:
    """The JSON document at ``path``, numbers as ``Decimal``."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PricingFormatError(f"cannot read {path}: {error.__class__.__name__}") from None
    return _loads(text)


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, RecursionError) as error:
        raise PricingFormatError(f"not valid JSON: {error}") from None


@functools.cache
def shipped() -> PriceTable:
    """Lumina's shipped table, parsed once per process."""
    return parse(read(SHIPPED_PATH), format="lumina")


def parse(data: Any, *, format: str = "auto") -> PriceTable:
    """A table from a decoded JSON document (``str``/``bytes`` are decoded first)."""
    if isinstance(data, str | bytes):
        data = _loads(data)
    if format not in FORMATS:
        raise PricingFormatError(
            f"unknown format {format!r}; use one of {', '.join(FORMATS)}", field="format"
        )
    if not isinstance(data, Mapping):
        raise PricingFormatError("a pricing table is a JSON object")
    if format == "auto":
        format = _detect(data)
    if format == "lumina":
        return _parse_lumina(data)
    return _parse_litellm(data)


def _detect(data: Mapping[str, Any]) -> str:
    if data.get("format") == LUMINA_FORMAT or isinstance(data.get("models"), Mapping):
        return "lumina"
    litellm_keys = {"input_cost_per_token", "output_cost_per_token", "litellm_provider", "mode"}
    if "sample_spec" in data or any(
        isinstance(entry, Mapping) and litellm_keys & set(entry) for entry in data.values()
    ):
        return "litellm"
    raise PricingFormatError(
        "cannot tell the format: expected Lumina's prices.json or LiteLLM's "
        "model_prices_and_context_window.json; pass the format explicitly",
        field="format",
    )


# --- Values -----------------------------------------------------------------------------


class _Bad(Exception):
    """One entry is unusable; the message says why."""


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise _Bad(f"{field} is not a number")
    if isinstance(value, float):
        # A caller's already-decoded JSON: repr is the shortest text that reads back as
        # this float, i.e. what the JSON file said.
        value = repr(value)
    try:
        number = Decimal(value) if isinstance(value, Decimal | int | str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise _Bad(f"{field} is not a number")
    if number < 0:
        raise _Bad(f"{field} is negative")
    return number


def _per_million(number: Decimal, field: str) -> Decimal:
    if number > MAX_PRICE:
        raise _Bad(f"{field} is implausibly high")
    return number.quantize(PLACES, rounding=ROUND_HALF_EVEN)


def _price(entry: Mapping[str, Any], field: str, *, per_token: bool) -> Decimal | None:
    value = entry.get(field)
    if value is None:
        return None
    number = _decimal(value, field)
    return _per_million(number * MILLION if per_token else number, field)


def _tokens(entry: Mapping[str, Any], *fields: str) -> int | None:
    for field in fields:
        value = entry.get(field)
        if value is None:
            continue
        try:
            number = _decimal(value, field)
        except _Bad:
            raise _Bad(f"{field} is not a whole number of tokens") from None
        if number != number.to_integral_value() or not 0 < number <= MAX_TOKENS:
            raise _Bad(f"{field} is not a whole number of tokens")
        return int(number)
    return None


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


# --- Lumina's format --------------------------------------------------------------------


def _parse_lumina(data: Mapping[str, Any]) -> PriceTable:
    models = data.get("models")
    if not isinstance(models, Mapping):
        raise PricingFormatError('a Lumina price table needs a "models" object')
    updated = data.get("updated")
    if updated is not None and not isinstance(updated, str):
        raise PricingFormatError('"updated" must be a date such as "2026-11-01"')
    source = f"lumina-{updated}" if updated else "lumina"
    rows: list[PriceRow] = []
    skipped: list[tuple[str, str]] = []
    for model, entry in models.items():
        try:
            rows.extend(_lumina_rows(str(model), entry))
        except _Bad as bad:
            skipped.append((str(model), str(bad)))
    return PriceTable("lumina", source, tuple(rows), tuple(skipped), updated)


def _lumina_rows(model: str, entry: Any) -> Iterator[PriceRow]:
    if not isinstance(entry, Mapping):
        raise _Bad("the entry is not an object")
    if not model or len(model) > 200:
        raise _Bad("the model name must have 1 to 200 characters")
    if entry.get("input") is None or entry.get("output") is None:
        raise _Bad("input and output prices are required")
    mode = entry.get("mode", "chat")
    if mode not in ("chat", "embedding"):
        raise _Bad(f"mode {mode!r} is neither 'chat' nor 'embedding'")
    capabilities = entry.get("capabilities", [])
    if not isinstance(capabilities, list):
        raise _Bad("capabilities must be a list")
    try:
        declared = frozenset(Capability(str(c)) for c in capabilities)
    except ValueError:
        unknown = sorted(str(c) for c in capabilities if str(c) not in set(Capability))
        raise _Bad(f"unknown capabilities: {', '.join(unknown)}") from None
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise _Bad("aliases must be a list of names")
    provider = entry.get("provider", "")
    if not isinstance(provider, str):
        raise _Bad("provider must be a string")
    row = PriceRow(
        model=model,
        provider=provider,
        mode=mode,
        prices=Prices(
            input=_price(entry, "input", per_token=False),  # type: ignore[arg-type]
            output=_price(entry, "output", per_token=False),  # type: ignore[arg-type]
            cached_input=_price(entry, "cached_input", per_token=False),
            cache_write=_price(entry, "cache_write", per_token=False),
            reasoning=_price(entry, "reasoning", per_token=False),
        ),
        context_window=_tokens(entry, "context_window"),
        max_output_tokens=_tokens(entry, "max_output_tokens"),
        capabilities=declared,
    )
    yield row
    for alias in aliases:
        yield dataclasses.replace(row, model=alias)


# --- LiteLLM's format -------------------------------------------------------------------


def _parse_litellm(data: Mapping[str, Any]) -> PriceTable:
    rows: list[PriceRow] = []
    skipped: list[tuple[str, str]] = []
    for model, entry in data.items():
        if model == "sample_spec":
            skipped.append((model, "LiteLLM's documentation entry, not a model"))
            continue
        try:
            rows.append(_litellm_row(str(model), entry))
        except _Bad as bad:
            skipped.append((str(model), str(bad)))
    return PriceTable("litellm", "litellm", tuple(rows), tuple(skipped))


def _litellm_row(model: str, entry: Any) -> PriceRow:
    if not isinstance(entry, Mapping):
        raise _Bad("the entry is not an object")
    if not model or len(model) > 200:
        raise _Bad("the model name must have 1 to 200 characters")
    mode = LITELLM_MODES.get(str(entry.get("mode", "chat")))
    if mode is None:
        raise _Bad(f"mode {entry.get('mode')!r} is not priced per token by Lumina")
    input_price = _price(entry, "input_cost_per_token", per_token=True)
    if input_price is None:
        raise _Bad("no input_cost_per_token")
    output_price = _price(entry, "output_cost_per_token", per_token=True)
    if output_price is None:
        if mode != "embedding":
            raise _Bad("no output_cost_per_token")
        output_price = Decimal(0)
    provider = entry.get("litellm_provider", "")
    if mode == "embedding":
        capabilities = {Capability.EMBEDDINGS}
    else:
        flagged = {c for flag, c in LITELLM_CAPABILITIES.items() if entry.get(flag) is True}
        capabilities = {Capability.CHAT, Capability.STREAMING} | flagged
    return PriceRow(
        model=model,
        provider=provider if isinstance(provider, str) else "",
        mode=mode,
        prices=Prices(
            input=input_price,
            output=output_price,
            cached_input=_price(entry, "cache_read_input_token_cost", per_token=True),
            cache_write=_price(entry, "cache_creation_input_token_cost", per_token=True),
            reasoning=_price(entry, "output_cost_per_reasoning_token", per_token=True),
        ),
        context_window=_tokens(entry, "max_input_tokens", "max_tokens"),
        max_output_tokens=_tokens(entry, "max_output_tokens"),
        capabilities=frozenset(capabilities),
    )


def describe(prices: Prices) -> str:
    """``in 2.5 / cached 1.25 / out 10`` for listings."""
    parts = [f"in {_plain(prices.input)}"]
    if prices.cached_input is not None:
        parts.append(f"cached {_plain(prices.cached_input)}")
    if prices.cache_write is not None:
        parts.append(f"write {_plain(prices.cache_write)}")
    parts.append(f"out {_plain(prices.output)}")
    if prices.reasoning is not None:
        parts.append(f"reasoning {_plain(prices.reasoning)}")
    return " / ".join(parts)
