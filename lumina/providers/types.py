"""Value types every providers room shares, and that ``providers.api`` hands out.

Plain frozen dataclasses and enums: adapters, the gateway, selection and the usage
ledger speak in these, never in models.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from decimal import Decimal
from typing import Any

MILLION = Decimal(1_000_000)


class ProviderKind(enum.StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE_OPENAI = "azure_openai"
    OLLAMA = "ollama"
    OPENAI_COMPATIBLE = "openai_compatible"
    LOCAL = "local"


class Capability(enum.StrEnum):
    CHAT = "chat"
    STREAMING = "streaming"
    TOOLS = "tools"
    VISION = "vision"
    JSON_MODE = "json_mode"
    EMBEDDINGS = "embeddings"


@dataclasses.dataclass(frozen=True)
class Prices:
    """US dollars per million tokens, one price per kind of token.

    ``cached_input``, ``cache_write`` and ``reasoning`` fall back to ``input``,
    ``input`` and ``output`` when a provider does not price them separately.
    """

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def cost(self, usage: Usage) -> Decimal:
        cached = self.input if self.cached_input is None else self.cached_input
        write = self.input if self.cache_write is None else self.cache_write
        reasoning = self.output if self.reasoning is None else self.reasoning
        total = (
            usage.input_tokens * self.input
            + usage.cached_input_tokens * cached
            + usage.cache_write_tokens * write
            + usage.output_tokens * self.output
            + usage.reasoning_tokens * reasoning
        )
        return total / MILLION


@dataclasses.dataclass(frozen=True)
class Usage:
    """Tokens of one request in disjoint buckets, so each is priced exactly once.

    ``input_tokens`` excludes cached reads and cache writes; ``output_tokens`` excludes
    reasoning. OpenAI reports totals that include them; ``from_openai`` splits them.
    ``estimated`` is set when Lumina counted the tokens because the provider sent none.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens

    @property
    def completion_tokens(self) -> int:
        return self.output_tokens + self.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None, *, estimated: bool = False) -> Usage | None:
        """Split an OpenAI ``usage`` object (Chat Completions or Embeddings) into buckets."""
        if not usage:
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        cached = min(int(prompt_details.get("cached_tokens") or 0), prompt)
        written = min(int(prompt_details.get("cache_write_tokens") or 0), prompt - cached)
        reasoning = min(int(completion_details.get("reasoning_tokens") or 0), completion)
        return cls(
            input_tokens=prompt - cached - written,
            cached_input_tokens=cached,
            cache_write_tokens=written,
            output_tokens=completion - reasoning,
            reasoning_tokens=reasoning,
            estimated=estimated,
        )

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object for this request, details included.

        OpenAI has no field for tokens written to a prompt cache (Anthropic bills them
        apart), so they go in ``prompt_tokens_details.cache_write_tokens``, which SDKs keep
        as an extra field and ``from_openai`` reads back.
        """
        prompt_details: dict[str, int] = {"cached_tokens": self.cached_input_tokens}
        if self.cache_write_tokens:
            prompt_details["cache_write_tokens"] = self.cache_write_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
        )


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Everything an adapter needs to call one model of one provider.

    Built from the registry by the services; ``api_key`` is the decrypted key and lives
    only in memory.
    """

    provider_id: uuid.UUID
    provider_name: str
    kind: ProviderKind
    base_url: str
    model: str  # the name the provider knows the model by
    api_key: str | None = dataclasses.field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    # Azure OpenAI: the api-version query parameter; the deployment is ``model``.
    api_version: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Completion:
    """A whole (non-streamed) chat completion in OpenAI's response shape."""

    body: dict[str, Any]
    usage: Usage | None


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """An embeddings response in OpenAI's shape."""

    body: dict[str, Any]
    usage: Usage | None


@dataclasses.dataclass(frozen=True)
class ProviderDTO:
    """A registered provider. The API key itself never leaves the registry."""

    id: uuid.UUID
    name: str
    kind: ProviderKind
    base_url: str
    has_api_key: bool
    enabled: bool = True
    priority: int = 0  # higher is tried first by the ``priority`` strategy
    weight: int = 1  # share of traffic under ``weighted`` round-robin
    max_concurrency: int = 64  # the provider's bulkhead
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    api_version: str | None = None
    tags: frozenset[str] = frozenset()
    revision: int = 1  # bumped on every change; caches of the decrypted key follow it


@dataclasses.dataclass(frozen=True)
class DeploymentDTO:
    """One model as one provider serves it (LiteLLM's "deployment").

    ``name`` is the public model name clients ask for; several providers may serve the
    same name, and ``aliases`` add more names, so a name can resolve to many deployments.
    ``upstream_model`` is what the provider itself calls it.
    """

    id: uuid.UUID
    provider: ProviderDTO
    name: str
    upstream_model: str
    aliases: tuple[str, ...] = ()
    capabilities: frozenset[Capability] = frozenset()
    context_window: int = 8192
    max_output_tokens: int | None = None
    prices: Prices = Prices()
    enabled: bool = True
    tags: frozenset[str] = frozenset()

    @property
    def qualified_name(self) -> str:
        """``provider/name``: names exactly this deployment."""
        return f"{self.provider.name}/{self.name}"

    @property
    def usable(self) -> bool:
        return self.enabled and self.provider.enabled

    def supports(self, needs: frozenset[Capability]) -> bool:
        return needs <= self.capabilities


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """A snapshot of the whole registry, cached per process and replaced on change."""

    providers: tuple[ProviderDTO, ...]
    deployments: tuple[DeploymentDTO, ...]
    version: int = 0

    def resolve(self, model: str) -> tuple[DeploymentDTO, ...]:
        """Usable deployments a requested model name stands for.

        ``provider/name`` names one deployment; a plain name matches deployments by name or
        alias. Virtual names such as ``lumina/auto`` are resolved by selection, not here.
        """
        if "/" in model:
            provider, _, name = model.partition("/")
            exact = tuple(
                d
                for d in self.deployments
                if d.provider.name == provider and (d.name == name or name in d.aliases)
            )
            if exact:
                return tuple(d for d in exact if d.usable)
        return tuple(
            d for d in self.deployments if d.usable and (d.name == model or model in d.aliases)
        )


class Strategy(enum.StrEnum):
    CHEAPEST = "cheapest"
    FASTEST = "fastest"  # EWMA latency, time to first token for streams
    BALANCED = "balanced"
    PRIORITY = "priority"
    WEIGHTED = "weighted"  # weighted round-robin over providers' weights


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a request needs from a deployment; selection ranks only those that fit."""

    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    min_context_window: int = 0
    # Upper bound on (input + output) price per million tokens, in US dollars.
    max_price: Decimal | None = None
    strategy: Strategy = Strategy.BALANCED
    tags: frozenset[str] = frozenset()
    # Tokens the request is expected to use, to check the context window and price it.
    estimated_input_tokens: int = 0
    estimated_output_tokens: int = 0
    # Money left in the caller's budget: candidates that would exceed it are skipped.
    budget_remaining: Decimal | None = None
    # Embeddings: the context window bounds each input, not the batch (then only
    # ``min_context_window``, the longest input, is checked against it).
    context_per_input: bool = False


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A ranked deployment and why it is where it is."""

    deployment: DeploymentDTO
    rank: int
    score: float
    reason: str


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A deployment selection left out, and why (open circuit, budget, capability …)."""

    deployment: DeploymentDTO
    reason: str


class UsageStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"  # the provider (or every candidate) failed
    CUT = "cut"  # the stream broke after the first byte
    CANCELLED = "cancelled"  # the client went away
    REJECTED = "rejected"  # refused before any provider was called (budget, rate limit)


@dataclasses.dataclass(frozen=True)
class UsageEntry:
    """What one request used and cost: one row of the usage ledger.

    Every request produces one, whatever its outcome, after its response is complete.
    """

    id: uuid.UUID
    occurred_at: Any  # datetime (aware, UTC)
    request_id: str
    operation: str  # "chat" or "embeddings"
    status: UsageStatus
    stream: bool
    requested_model: str
    usage: Usage
    cost: Decimal
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    provider_name: str = ""
    deployment_id: uuid.UUID | None = None
    model: str = ""  # the deployment's public name
    attempts: int = 1
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    error_code: str = ""
    # Each call to a provider when there was more than one, or when the only one failed:
    # {"provider", "model", "attempt", "outcome", "error_code", "duration_ms"}.
    attempt_log: tuple[dict[str, Any], ...] = ()
