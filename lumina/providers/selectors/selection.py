"""Selection: which deployments can serve a request, best first, and why.

``rank`` is pure and runs on every request, so it stays cheap (tens of microseconds for
ten deployments). It drops deployments that cannot serve the request — disabled,
missing capabilities, context window too small, missing tags, over the price cap, over
the remaining budget, circuit open — and orders the rest by the strategy:

- ``cheapest``: the estimated cost of this request (input and output tokens at the
  deployment's prices; input+output price per million when nothing is estimated), then
  priority.
- ``fastest``: the EWMA of time to first token for streams (needs include ``streaming``),
  of total latency otherwise; deployments never measured come after measured ones, by
  priority.
- ``balanced``: ``½·cost/highest cost + ½·latency/highest latency + error rate``, lower
  is better. A deployment never measured takes the average latency term of the others,
  so new deployments are neither starved nor favoured. Priority breaks ties.
- ``priority``: provider priority (highest first), then weight.
- ``weighted``: smooth weighted round-robin (nginx's algorithm) over provider weights:
  over any run of calls each deployment leads in proportion to its weight, evenly
  interleaved, deterministically for a given call order. State is per process.

A half-open circuit is allowed but ranked last: its one trial call should not be the
first thing most requests try. Every candidate carries a human-readable reason and every
rejection says why.

The development echo model (any chat model of a ``local`` provider: the local adapter has
no other) is held back from every pool, ``lumina/auto`` and all five strategies included,
while a real chat model is enabled in that pool: it is never a fallback that would answer
"You said: …" to a caller who expected a language model. Named alone, it still answers.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal

from lumina.providers.errors import NoCandidateError, UnknownModelError
from lumina.providers.resilience import CircuitState, LatencyStats
from lumina.providers.types import (
    MILLION,
    Candidate,
    Capability,
    Catalogue,
    DeploymentDTO,
    Needs,
    Prices,
    ProviderKind,
    Rejection,
    Strategy,
)

AUTO = "lumina/auto"
VIRTUAL_MODELS = (AUTO, *(f"{AUTO}:{strategy.value}" for strategy in Strategy))

# Why a deployment was left out, as a kind the error classification reads.
DISABLED = "disabled"
CAPABILITIES = "capabilities"
CONTEXT = "context_window"
TAGS = "tags"
PRICE = "price"
BUDGET = "budget"
CIRCUIT = "circuit"
DEVELOPMENT = "development"
HELD_BACK = "development model: not routed while a real chat model is enabled"

_OPEN = CircuitState.OPEN.value
_HALF_OPEN = CircuitState.HALF_OPEN.value
_ZERO = Decimal(0)


@dataclasses.dataclass(frozen=True)
class Selection:
    """The answer to "who serves this request?": candidates best first, and the rest."""

    model: str  # as requested
    strategy: Strategy
    candidates: tuple[Candidate, ...]
    rejections: tuple[Rejection, ...]


def rank(
    *,
    deployments: Sequence[DeploymentDTO],
    needs: Needs,
    breaker_states: Mapping[uuid.UUID, str] | None = None,
    stats: LatencyStats | None = None,
) -> tuple[list[Candidate], list[Rejection]]:
    """Candidates able to serve ``needs``, best first, and the deployments rejected."""
    candidates, rejections, _kinds = _rank(deployments, needs, breaker_states, stats)
    return candidates, rejections


def select(
    *,
    catalogue: Catalogue,
    model: str,
    needs: Needs,
    breaker_states: Mapping[uuid.UUID, str] | None = None,
    stats: LatencyStats | None = None,
    allow_empty: bool = False,
) -> Selection:
    """Resolve ``model`` (a name, an alias, ``provider/name`` or ``lumina/auto[:strategy]``)
    and rank its deployments.

    Raises ``UnknownModelError`` for a name nothing answers to and, unless
    ``allow_empty``, ``NoCandidateError`` when no deployment can take the request.
    """
    strategy = needs.strategy
    if model == AUTO or model.startswith(AUTO + ":"):
        strategy = _virtual_strategy(model, default=needs.strategy)
        pool: Sequence[DeploymentDTO] = [d for d in catalogue.deployments if d.usable]
        if not pool and not allow_empty:
            raise NoCandidateError(
                "No provider is enabled.",
                model=model,
                rejections=(),
                code="no_available_provider",
                status=503,
            )
    else:
        pool = catalogue.resolve(model)
        if not pool:
            pool = _named(catalogue, model)  # known, but every deployment is disabled
            if not pool:
                raise UnknownModelError(model)
    if strategy is not needs.strategy:
        needs = dataclasses.replace(needs, strategy=strategy)
    pool, held_back = _hold_back_development(pool)
    candidates, rejections, kinds = _rank(pool, needs, breaker_states, stats)
    if held_back:
        rejections += [Rejection(deployment=d, reason=HELD_BACK) for d in held_back]
        kinds += [DEVELOPMENT] * len(held_back)
    if not candidates and not allow_empty:
        raise _no_candidate(model, needs, rejections, kinds)
    return Selection(
        model=model,
        strategy=strategy,
        candidates=tuple(candidates),
        rejections=tuple(rejections),
    )


def is_development(d: DeploymentDTO) -> bool:
    """The development echo model: the only chat model a ``local`` provider can serve."""
    return d.provider.kind == ProviderKind.LOCAL and Capability.CHAT in d.capabilities


def _hold_back_development(
    pool: Sequence[DeploymentDTO],
) -> tuple[Sequence[DeploymentDTO], list[DeploymentDTO]]:
    """The pool without the development model when a real chat model is enabled in it."""
    development = [d for d in pool if is_development(d)]
    if not development:
        return pool, []
    real_chat = any(
        d.usable and Capability.CHAT in d.capabilities and not is_development(d) for d in pool
    )
    if not real_chat:
        return pool, []
    return [d for d in pool if not is_development(d)], development


def _virtual_strategy(model: str, *, default: Strategy) -> Strategy:
    if model == AUTO:
        return default
    try:
        return Strategy(model.removeprefix(AUTO + ":"))
    except ValueError:
        raise UnknownModelError(model) from None


def _named(catalogue: Catalogue, model: str) -> list[DeploymentDTO]:
    """``Catalogue.resolve`` without its "usable" filter: tells a disabled model from an
    unknown one."""
    if "/" in model:
        provider, _, name = model.partition("/")
        exact = [
            d
            for d in catalogue.deployments
            if d.provider.name == provider and (d.name == name or name in d.aliases)
        ]
        if exact:
            return exact
    return [d for d in catalogue.deployments if d.name == model or model in d.aliases]


def _no_candidate(
    model: str, needs: Needs, rejections: list[Rejection], kinds: list[str]
) -> NoCandidateError:
    present = set(kinds) - {DEVELOPMENT}  # held back by design, never the reason to report
    if CIRCUIT in present or present <= {DISABLED}:
        message, code, status = (
            f"No provider of '{model}' is available right now.",
            "no_available_provider",
            503,
        )
    elif BUDGET in present:
        message, code, status = (
            f"The remaining budget does not cover a request to '{model}'.",
            "budget_exceeded",
            402,
        )
    elif present <= {DISABLED, CAPABILITIES}:
        wanted = ", ".join(sorted(needs.capabilities))
        message, code, status = (
            f"No deployment of '{model}' supports {wanted}.",
            "unsupported",
            400,
        )
    elif CONTEXT in present:
        message, code, status = (
            f"The request needs more context than any deployment of '{model}' has.",
            "context_length_exceeded",
            400,
        )
    else:
        message, code, status = (
            f"No deployment of '{model}' meets the request's needs.",
            "unsupported",
            400,
        )
    return NoCandidateError(message, model=model, rejections=rejections, code=code, status=status)


# -- ranking ----------------------------------------------------------------------------


def _rank(
    deployments: Sequence[DeploymentDTO],
    needs: Needs,
    breaker_states: Mapping[uuid.UUID, str] | None,
    stats: LatencyStats | None,
) -> tuple[list[Candidate], list[Rejection], list[str]]:
    fits: list[tuple[DeploymentDTO, Decimal, bool]] = []  # deployment, est. cost, half-open
    rejections: list[Rejection] = []
    kinds: list[str] = []
    estimated_in = needs.estimated_input_tokens
    estimated_out = needs.estimated_output_tokens
    estimated = bool(estimated_in or estimated_out)
    context_needed = (
        needs.min_context_window
        if needs.context_per_input
        else max(needs.min_context_window, estimated_in + estimated_out)
    )
    wanted = needs.capabilities
    max_price = needs.max_price
    budget = needs.budget_remaining
    # Only these need the request's estimated cost: skip the Decimal arithmetic otherwise.
    priced = estimated and (
        budget is not None or needs.strategy in (Strategy.CHEAPEST, Strategy.BALANCED)
    )

    for d in deployments:
        kind = reason = None
        prices = d.prices
        if not d.usable:
            kind, reason = DISABLED, "disabled" if d.provider.enabled else "provider disabled"
        elif not wanted <= d.capabilities:
            kind = CAPABILITIES
            reason = "missing capabilities: " + ", ".join(sorted(wanted - d.capabilities))
        elif d.context_window < context_needed:
            kind = CONTEXT
            reason = f"context window {d.context_window} < {context_needed} tokens needed"
        elif needs.tags and not needs.tags <= (d.tags | d.provider.tags):
            kind = TAGS
            reason = "missing tags: " + ", ".join(sorted(needs.tags - d.tags - d.provider.tags))
        elif max_price is not None and prices.input + prices.output > max_price:
            kind = PRICE
            reason = (
                f"price {_num(prices.input + prices.output)}/M (input+output) "
                f"over the maximum {_num(max_price)}/M"
            )
        if kind is None:
            cost = (
                (estimated_in * prices.input + estimated_out * prices.output) / MILLION
                if priced
                else _ZERO
            )
            state = breaker_states.get(d.id) if breaker_states else None
            if budget is not None and cost > budget:
                kind = BUDGET
                reason = f"budget: est. {_dollars(cost)} over the {_dollars(budget)} remaining"
            elif state == _OPEN:
                kind, reason = CIRCUIT, "circuit open"
            else:
                fits.append((d, cost, state == _HALF_OPEN))
                continue
        rejections.append(Rejection(deployment=d, reason=reason))
        kinds.append(kind)

    if not fits:
        return [], rejections, kinds
    strategy = needs.strategy
    if strategy is Strategy.CHEAPEST:
        ordered = _cheapest(fits, estimated)
    elif strategy is Strategy.FASTEST:
        ordered = _fastest(fits, stats, Capability.STREAMING in needs.capabilities)
    elif strategy is Strategy.PRIORITY:
        ordered = _priority(fits)
    elif strategy is Strategy.WEIGHTED:
        ordered = _weighted(fits)
    else:
        ordered = _balanced(fits, stats, estimated, Capability.STREAMING in needs.capabilities)

    candidates = []
    for position, (d, score, reason, half_open) in enumerate(ordered, start=1):
        if half_open:
            reason += "; circuit half-open: ranked last, a trial call"
        candidates.append(Candidate(deployment=d, rank=position, score=score, reason=reason))
    return candidates, rejections, kinds


# Each strategy returns (deployment, score, reason, half-open) best first; the sort key
# always starts with the half-open flag and ends with the input position, so ties keep
# the catalogue's order and the outcome is deterministic.
_Ranked = list[tuple[DeploymentDTO, float, str, bool]]


def _cheapest(fits: list[tuple[DeploymentDTO, Decimal, bool]], estimated: bool) -> _Ranked:
    rows = []
    for position, (d, cost, half_open) in enumerate(fits):
        p = d.prices
        unit = p.input + p.output
        measure = cost if estimated else unit
        rows.append((half_open, measure, unit, -d.provider.priority, position, d))
    rows.sort(key=_without_deployment)
    ranked: _Ranked = []
    for half_open, measure, _unit, _priority, _position, d in rows:
        prices = _price_text(d)
        if estimated:
            reason = f"cheapest: {_dollars(measure)} est. ({prices})"
            score = float(measure)
        else:
            reason = f"cheapest: {_num(measure)}/M input+output ({prices})"
            score = float(measure)
        ranked.append((d, score, reason, half_open))
    return ranked


def _without_deployment(row: tuple) -> tuple:
    return row[:-1]


def _fastest(
    fits: list[tuple[DeploymentDTO, Decimal, bool]], stats: LatencyStats | None, stream: bool
) -> _Ranked:
    rows = []
    for position, (d, _cost, half_open) in enumerate(fits):
        measure, label, _errors = _speed(stats, d.id, stream)
        unknown = measure is None
        rows.append((half_open, unknown, measure or 0.0, -d.provider.priority, position, label, d))
    rows.sort(key=_without_deployment)
    ranked: _Ranked = []
    for half_open, unknown, measure, _priority, _position, label, d in rows:
        if unknown:
            reason = f"fastest: no latency measured yet (priority {d.provider.priority})"
            ranked.append((d, math.inf, reason, half_open))
        else:
            ranked.append((d, measure, f"fastest: {label} {measure:.0f} ms (EWMA)", half_open))
    return ranked


def _speed(stats: LatencyStats | None, deployment_id: uuid.UUID, stream: bool):
    """The EWMA the strategies compare (TTFT for streams when known), and its name."""
    entry = stats.get(deployment_id) if stats is not None else None
    if entry is None:
        return None, "", 0.0
    if stream and entry.ttft is not None:
        return entry.ttft, "time to first token", entry.errors
    return entry.latency, "latency", entry.errors


def _priority(fits: list[tuple[DeploymentDTO, Decimal, bool]]) -> _Ranked:
    rows = [
        (half_open, -d.provider.priority, -d.provider.weight, position, d)
        for position, (d, _cost, half_open) in enumerate(fits)
    ]
    rows.sort(key=_without_deployment)
    return [
        (
            d,
            float(d.provider.priority),
            f"priority {d.provider.priority}, weight {d.provider.weight}",
            half_open,
        )
        for half_open, _p, _w, _position, d in rows
    ]


def _balanced(
    fits: list[tuple[DeploymentDTO, Decimal, bool]],
    stats: LatencyStats | None,
    estimated: bool,
    stream: bool,
) -> _Ranked:
    measures = [cost if estimated else d.prices.input + d.prices.output for d, cost, _h in fits]
    costs = [float(m) for m in measures]
    speeds = [_speed(stats, d.id, stream) for d, _cost, _h in fits]
    highest_cost = max(costs)
    known = [s[0] for s in speeds if s[0] is not None]
    highest_speed = max(known) if known else 0.0
    average_speed_term = sum(known) / len(known) / highest_speed if known and highest_speed else 0.0
    rows = []
    for position, (d, _cost, half_open) in enumerate(fits):
        cost_term = costs[position] / highest_cost if highest_cost else 0.0
        speed, _label, errors = speeds[position]
        if speed is None:
            speed_term = average_speed_term
        else:
            speed_term = speed / highest_speed if highest_speed else 0.0
        score = 0.5 * cost_term + 0.5 * speed_term + errors
        rows.append((half_open, score, -d.provider.priority, position, d))
    rows.sort(key=_without_deployment)
    ranked: _Ranked = []
    for half_open, score, _priority, position, d in rows:
        measure = measures[position]
        speed, _label, errors = speeds[position]
        price = f"est. {_dollars(measure)}" if estimated else f"{_num(measure)}/M input+output"
        latency = "latency unknown" if speed is None else f"{speed:.0f} ms"
        failing = f", error rate {errors:.0%}" if errors >= 0.005 else ""
        reason = f"balanced: score {score:.3f} (cost {price}, {latency}{failing})"
        ranked.append((d, score, reason, half_open))
    return ranked


# Smooth weighted round-robin state: current weights per pool of deployments.
_wrr_lock = threading.Lock()
_wrr_state: dict[tuple[uuid.UUID, ...], dict[uuid.UUID, int]] = {}
_WRR_POOLS = 1024


def reset_round_robin() -> None:
    """Forget the weighted round-robin's position (tests; a registry change)."""
    with _wrr_lock:
        _wrr_state.clear()


def _weighted(fits: list[tuple[DeploymentDTO, Decimal, bool]]) -> _Ranked:
    pool = [(d, half_open) for d, _cost, half_open in fits if not half_open]
    trials = [(d, half_open) for d, _cost, half_open in fits if half_open]
    total = sum(max(0, d.provider.weight) for d, _h in pool)
    if not pool or total == 0:
        return _priority(fits)
    key = tuple(d.id for d, _h in pool)
    with _wrr_lock:
        current = _wrr_state.get(key)
        if current is None:
            if len(_wrr_state) >= _WRR_POOLS:
                _wrr_state.clear()
            current = _wrr_state[key] = {}
        best = None
        best_weight = 0
        for d, _h in pool:
            weight = current.get(d.id, 0) + max(0, d.provider.weight)
            current[d.id] = weight
            if best is None or weight > best_weight:
                best, best_weight = d, weight
        current[best.id] -= total
        after = dict(current)
    # The leader first; then whoever the round-robin owes most, i.e. the next in turn.
    rest = sorted(
        (
            (-after[d.id], -d.provider.priority, position, d)
            for position, (d, _h) in enumerate(pool)
            if d is not best
        ),
        key=_without_deployment,
    )
    share = f"of {total}"
    ranked: _Ranked = [
        (best, float(after[best.id]),
         f"weighted round-robin: weight {best.provider.weight} {share}, its turn", False)
    ]  # fmt: skip
    ranked += [
        (d, float(-owed), f"weighted round-robin: weight {d.provider.weight} {share}", False)
        for owed, _priority, _position, d in rest
    ]
    ranked += [(d, 0.0, f"weight {d.provider.weight}", True) for d, _h in trials]
    return ranked


_price_texts: dict[uuid.UUID, tuple[Prices, str]] = {}


def _price_text(d: DeploymentDTO) -> str:
    """The prices part of a reason (input 0.15/M, output 0.6/M), formatted once per
    deployment and price change."""
    cached = _price_texts.get(d.id)
    if cached is not None and cached[0] is d.prices:
        return cached[1]
    if len(_price_texts) > 10_000:
        _price_texts.clear()
    text = f"input {_num(d.prices.input)}/M, output {_num(d.prices.output)}/M"
    _price_texts[d.id] = (d.prices, text)
    return text


def _num(value: Decimal) -> str:
    """A price as people write it: 0.15, 2.5, 10 — no exponent, no trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _dollars(value: Decimal | float) -> str:
    """$2.50, $0.00045: cents for dollars, significant digits below (float formatting is
    several times faster than Decimal's, and exact enough to explain a ranking)."""
    value = float(value)
    if not value:
        return "$0"
    if value >= 1:
        return f"${value:.2f}"
    return "$" + f"{value:.8f}".rstrip("0")
