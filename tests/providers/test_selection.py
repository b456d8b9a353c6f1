"""Ranking candidates: filters, strategies, reasons, virtual model names and errors."""

from __future__ import annotations

import collections
import math
from decimal import Decimal

import pytest

from lumina.providers.errors import NoCandidateError, UnknownModelError
from lumina.providers.resilience import LatencyStats
from lumina.providers.selectors.selection import rank, reset_round_robin, select
from lumina.providers.types import Capability, Catalogue, Needs, Strategy
from tests.providers.routing_support import deployment, provider


@pytest.fixture(autouse=True)
def _fresh_round_robin():
    reset_round_robin()
    yield
    reset_round_robin()


def names(candidates) -> list[str]:
    return [c.deployment.provider.name for c in candidates]


def catalogue_of(*deployments) -> Catalogue:
    providers = tuple({d.provider.id: d.provider for d in deployments}.values())
    return Catalogue(providers=providers, deployments=tuple(deployments))


# -- strategies ---------------------------------------------------------------------------


def test_cheapest_orders_by_estimated_request_cost_and_says_what_it_costs():
    pricey = deployment(on="pricey", prices=("2.50", "10"))
    cheap = deployment(on="cheap", prices=("0.15", "0.60"))
    # Cheaper input but dearer output: with many output tokens it loses to "cheap".
    middling = deployment(on="middling", prices=("0.10", "1.00"))
    needs = Needs(
        strategy=Strategy.CHEAPEST, estimated_input_tokens=1000, estimated_output_tokens=500
    )

    candidates, rejections = rank(deployments=[pricey, middling, cheap], needs=needs)

    assert names(candidates) == ["cheap", "middling", "pricey"]
    assert [c.rank for c in candidates] == [1, 2, 3]
    assert not rejections
    # 1000 × 0.15/M + 500 × 0.60/M = $0.00045
    assert candidates[0].reason == "cheapest: $0.00045 est. (input 0.15/M, output 0.6/M)"
    assert candidates[0].score == pytest.approx(0.00045)


def test_cheapest_breaks_a_price_tie_by_priority():
    low = deployment(on="low", priority=1)
    high = deployment(on="high", priority=9)
    needs = Needs(strategy=Strategy.CHEAPEST, estimated_input_tokens=10)

    candidates, _ = rank(deployments=[low, high], needs=needs)

    assert names(candidates) == ["high", "low"]


def test_cheapest_without_an_estimate_compares_prices_per_million():
    a = deployment(on="a", prices=("1", "1"))
    b = deployment(on="b", prices=("0.5", "1"))

    candidates, _ = rank(deployments=[a, b], needs=Needs(strategy=Strategy.CHEAPEST))

    assert names(candidates) == ["b", "a"]
    assert candidates[0].reason.startswith("cheapest: 1.5/M input+output")


def test_fastest_uses_latency_for_whole_calls_and_time_to_first_token_for_streams():
    slow_start = deployment(on="slow-start")
    quick_start = deployment(on="quick-start")
    stats = LatencyStats(alpha=0.5)
    stats.record(slow_start.id, 400, ttft_ms=300)
    stats.record(quick_start.id, 900, ttft_ms=50)
    whole = Needs(strategy=Strategy.FASTEST)
    stream = Needs(
        strategy=Strategy.FASTEST,
        capabilities=frozenset({Capability.CHAT, Capability.STREAMING}),
    )

    by_latency, _ = rank(deployments=[quick_start, slow_start], needs=whole, stats=stats)
    by_ttft, _ = rank(deployments=[slow_start, quick_start], needs=stream, stats=stats)

    assert names(by_latency) == ["slow-start", "quick-start"]
    assert by_latency[0].reason == "fastest: latency 400 ms (EWMA)"
    assert names(by_ttft) == ["quick-start", "slow-start"]
    assert by_ttft[0].reason == "fastest: time to first token 50 ms (EWMA)"


def test_fastest_ranks_unmeasured_deployments_after_measured_ones_by_priority():
    measured = deployment(on="measured", priority=0)
    new_low = deployment(on="new-low", priority=1)
    new_high = deployment(on="new-high", priority=5)
    stats = LatencyStats()
    stats.record(measured.id, 2000)

    candidates, _ = rank(
        deployments=[new_low, new_high, measured],
        needs=Needs(strategy=Strategy.FASTEST),
        stats=stats,
    )

    assert names(candidates) == ["measured", "new-high", "new-low"]
    assert candidates[1].reason == "fastest: no latency measured yet (priority 5)"
    assert math.isinf(candidates[1].score)


def test_fastest_follows_the_ewma_not_the_last_sample():
    steady = deployment(on="steady")
    spiky = deployment(on="spiky")
    stats = LatencyStats(alpha=0.2)
    for _ in range(10):
        stats.record(steady.id, 300)
        stats.record(spiky.id, 100)
    stats.record(spiky.id, 2000)  # one slow call: EWMA 100 → 480, still above 300
    stats.record(steady.id, 300)

    candidates, _ = rank(
        deployments=[spiky, steady], needs=Needs(strategy=Strategy.FASTEST), stats=stats
    )

    assert stats.latency_ms(spiky.id) == pytest.approx(0.8 * 100 + 0.2 * 2000)
    assert names(candidates) == ["steady", "spiky"]


def test_balanced_mixes_normalised_cost_and_latency():
    # cost terms: 1.0, 0.25, 0.5; latency terms: 0.2, 1.0, 0.5
    fast_dear = deployment(on="fast-dear", prices=("40", "0"))
    slow_cheap = deployment(on="slow-cheap", prices=("10", "0"))
    middle = deployment(on="middle", prices=("20", "0"))
    stats = LatencyStats()
    stats.record(fast_dear.id, 200)
    stats.record(slow_cheap.id, 1000)
    stats.record(middle.id, 500)
    needs = Needs(strategy=Strategy.BALANCED, estimated_input_tokens=100_000)

    candidates, _ = rank(deployments=[fast_dear, slow_cheap, middle], needs=needs, stats=stats)

    assert names(candidates) == ["middle", "fast-dear", "slow-cheap"]
    assert [c.score for c in candidates] == pytest.approx([0.5, 0.6, 0.625])
    assert candidates[0].reason == "balanced: score 0.500 (cost est. $2.00, 500 ms)"


def test_balanced_penalises_a_deployment_that_keeps_failing():
    flaky = deployment(on="flaky", prices=("1", "1"))
    solid = deployment(on="solid", prices=("2", "2"))
    stats = LatencyStats(alpha=0.5)
    stats.record(flaky.id, 100)
    stats.record(solid.id, 100)
    stats.record(flaky.id, None, ok=False)

    candidates, _ = rank(deployments=[flaky, solid], needs=Needs(), stats=stats)

    assert names(candidates) == ["solid", "flaky"]
    assert "error rate 50%" in candidates[1].reason


def test_balanced_gives_an_unmeasured_deployment_the_average_latency_term():
    measured_fast = deployment(on="fast", prices=("1", "0"))
    measured_slow = deployment(on="slow", prices=("1", "0"))
    new = deployment(on="new", prices=("1", "0"))
    stats = LatencyStats()
    stats.record(measured_fast.id, 100)
    stats.record(measured_slow.id, 300)

    candidates, _ = rank(
        deployments=[measured_slow, new, measured_fast], needs=Needs(), stats=stats
    )

    assert names(candidates) == ["fast", "new", "slow"]
    assert "latency unknown" in candidates[1].reason


def test_priority_orders_by_provider_priority_then_weight():
    a = deployment(on=provider("a", priority=1, weight=1))
    b = deployment(on=provider("b", priority=5, weight=1))
    c = deployment(on=provider("c", priority=1, weight=3))

    candidates, _ = rank(deployments=[a, b, c], needs=Needs(strategy=Strategy.PRIORITY))

    assert names(candidates) == ["b", "c", "a"]
    assert candidates[0].reason == "priority 5, weight 1"


def test_weighted_round_robin_leads_in_proportion_to_weights_over_100_calls():
    five = deployment(on=provider("five", weight=5))
    three = deployment(on=provider("three", weight=3))
    two = deployment(on=provider("two", weight=2))
    needs = Needs(strategy=Strategy.WEIGHTED)

    leaders = collections.Counter(
        rank(deployments=[five, three, two], needs=needs)[0][0].deployment.provider.name
        for _ in range(100)
    )

    assert leaders == {"five": 50, "three": 30, "two": 20}


def test_weighted_round_robin_interleaves_like_nginx_and_lists_every_fallback():
    a = deployment(on=provider("a", weight=5))
    b = deployment(on=provider("b", weight=1))
    c = deployment(on=provider("c", weight=1))
    needs = Needs(strategy=Strategy.WEIGHTED)

    runs = [rank(deployments=[a, b, c], needs=needs)[0] for _ in range(7)]

    assert [run[0].deployment.provider.name for run in runs] == list("aabacaa")
    assert all(sorted(names(run)) == ["a", "b", "c"] for run in runs)
    assert runs[0][0].reason == "weighted round-robin: weight 5 of 7, its turn"


# -- filters ------------------------------------------------------------------------------


def test_every_filter_rejects_with_its_reason():
    vision = {Capability.CHAT, Capability.STREAMING, Capability.VISION}
    eu = {"eu"}
    good = deployment(on="good", tags=eu, capabilities=vision)
    disabled = deployment(on="off", enabled=False, tags=eu, capabilities=vision)
    provider_off = deployment(
        on=provider("provider-off", enabled=False), tags=eu, capabilities=vision
    )
    no_vision = deployment(on="no-vision", tags=eu)
    small = deployment(on="small", context_window=4096, tags=eu, capabilities=vision)
    untagged = deployment(on="untagged", capabilities=vision)
    dear = deployment(on="dear", prices=("30", "60"), tags=eu, capabilities=vision)
    over_budget = deployment(on="over-budget", prices=("9", "9"), tags=eu, capabilities=vision)
    tripped = deployment(on="tripped", tags=eu, capabilities=vision)
    needs = Needs(
        capabilities=frozenset({Capability.CHAT, Capability.VISION}),
        min_context_window=8000,
        tags=frozenset({"eu"}),
        max_price=Decimal("50"),
        estimated_input_tokens=1000,
        estimated_output_tokens=1000,
        budget_remaining=Decimal("0.01"),
    )

    candidates, rejections = rank(
        deployments=[
            good,
            disabled,
            provider_off,
            no_vision,
            small,
            untagged,
            dear,
            over_budget,
            tripped,
        ],
        needs=needs,
        breaker_states={tripped.id: "open"},
    )

    assert names(candidates) == ["good"]
    reasons = {r.deployment.provider.name: r.reason for r in rejections}
    assert reasons == {
        "off": "disabled",
        "provider-off": "provider disabled",
        "no-vision": "missing capabilities: vision",
        "small": "context window 4096 < 8000 tokens needed",
        "untagged": "missing tags: eu",
        "dear": "price 90/M (input+output) over the maximum 50/M",
        "over-budget": "budget: est. $0.018 over the $0.01 remaining",
        "tripped": "circuit open",
    }


def test_context_window_must_hold_the_estimated_input_and_output():
    small = deployment(on="small", context_window=8192)
    needs = Needs(estimated_input_tokens=8000, estimated_output_tokens=500)

    candidates, rejections = rank(deployments=[small], needs=needs)

    assert not candidates
    assert rejections[0].reason == "context window 8192 < 8500 tokens needed"


def test_tags_of_the_provider_count_for_its_deployments():
    tagged = deployment(on=provider("tagged", tags={"eu", "gdpr"}), tags={"fast"})

    candidates, _ = rank(deployments=[tagged], needs=Needs(tags=frozenset({"eu", "fast"})))

    assert names(candidates) == ["tagged"]


def test_half_open_circuit_is_allowed_but_ranked_last():
    cheap_trial = deployment(on="cheap-trial", prices=("0.01", "0.01"))
    dear = deployment(on="dear", prices=("5", "5"))

    candidates, rejections = rank(
        deployments=[cheap_trial, dear],
        needs=Needs(strategy=Strategy.CHEAPEST),
        breaker_states={cheap_trial.id: "half_open", dear.id: "closed"},
    )

    assert names(candidates) == ["dear", "cheap-trial"]
    assert candidates[1].reason.endswith("circuit half-open: ranked last, a trial call")
    assert not rejections


# -- resolving model names ----------------------------------------------------------------


def test_a_name_or_alias_resolves_to_every_deployment_serving_it():
    openai = deployment("gpt-4o-mini", on="openai", prices=("0.15", "0.6"))
    azure = deployment("gpt-4o-mini", on="azure", prices=("0.10", "0.6"), aliases=("mini",))
    other = deployment("llama3", on="ollama", prices=("0", "0"))
    catalogue = catalogue_of(openai, azure, other)

    by_name = select(
        catalogue=catalogue, model="gpt-4o-mini", needs=Needs(strategy=Strategy.CHEAPEST)
    )
    by_alias = select(catalogue=catalogue, model="mini", needs=Needs())
    exact = select(catalogue=catalogue, model="openai/gpt-4o-mini", needs=Needs())

    assert names(by_name.candidates) == ["azure", "openai"]
    assert names(by_alias.candidates) == ["azure"]
    assert names(exact.candidates) == ["openai"]


def test_lumina_auto_considers_every_usable_deployment_that_fits():
    chat = deployment("small-chat", on="a", prices=("1", "1"))
    embed = deployment("embedder", on="b", prices=("0", "0"), capabilities={Capability.EMBEDDINGS})
    off = deployment("off", on="c", prices=("0", "0"), enabled=False)
    catalogue = catalogue_of(chat, embed, off)

    selection = select(catalogue=catalogue, model="lumina/auto", needs=Needs())

    assert selection.strategy is Strategy.BALANCED
    assert [c.deployment.name for c in selection.candidates] == ["small-chat"]
    assert [r.deployment.name for r in selection.rejections] == ["embedder"]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_lumina_auto_with_a_strategy_picks_that_strategy(strategy):
    catalogue = catalogue_of(deployment(on="a"), deployment(on="b"))

    selection = select(catalogue=catalogue, model=f"lumina/auto:{strategy}", needs=Needs())

    assert selection.strategy is strategy
    assert selection.candidates[0].reason.split(":")[0].split(" ")[0] in {
        "cheapest", "fastest", "balanced", "priority", "weighted"
    }  # fmt: skip


def test_lumina_auto_cheapest_overrides_the_requested_strategy():
    dear = deployment(on="dear", prices=("9", "9"), priority=10)
    cheap = deployment(on="cheap", prices=("1", "1"))

    selection = select(
        catalogue=catalogue_of(dear, cheap),
        model="lumina/auto:cheapest",
        needs=Needs(strategy=Strategy.PRIORITY),
    )

    assert names(selection.candidates) == ["cheap", "dear"]


@pytest.mark.parametrize("model", ["gpt-9", "lumina/auto:telepathic", "nobody/gpt-4o-mini"])
def test_unknown_model_is_a_404_naming_the_model(model):
    catalogue = catalogue_of(deployment("gpt-4o-mini", on="openai"))

    with pytest.raises(UnknownModelError) as caught:
        select(catalogue=catalogue, model=model, needs=Needs())

    assert caught.value.status == 404
    assert caught.value.code == "model_not_found"
    assert model in caught.value.message
    assert list(caught.value.fields) == ["model"]


def test_no_deployment_with_the_capability_is_a_400_unsupported():
    catalogue = catalogue_of(deployment("gpt", on="a"), deployment("gpt", on="b"))
    needs = Needs(capabilities=frozenset({Capability.CHAT, Capability.VISION}))

    with pytest.raises(NoCandidateError) as caught:
        select(catalogue=catalogue, model="gpt", needs=needs)

    assert (caught.value.status, caught.value.code) == (400, "unsupported")
    assert "vision" in caught.value.message
    assert caught.value.fields["rejections"] == [
        "a/gpt: missing capabilities: vision",
        "b/gpt: missing capabilities: vision",
    ]


def test_every_circuit_open_is_a_503_no_available_provider():
    a, b = deployment("gpt", on="a"), deployment("gpt", on="b")

    with pytest.raises(NoCandidateError) as caught:
        select(
            catalogue=catalogue_of(a, b),
            model="gpt",
            needs=Needs(),
            breaker_states={a.id: "open", b.id: "open"},
        )

    assert (caught.value.status, caught.value.code) == (503, "no_available_provider")
    assert len(caught.value.rejections) == 2


def test_a_model_whose_deployments_are_all_disabled_is_unavailable_not_unknown():
    catalogue = catalogue_of(deployment("gpt", on="a", enabled=False))

    with pytest.raises(NoCandidateError) as caught:
        select(catalogue=catalogue, model="gpt", needs=Needs())

    assert (caught.value.status, caught.value.code) == (503, "no_available_provider")
    assert caught.value.fields["rejections"] == ["a/gpt: disabled"]


def test_too_many_tokens_is_a_400_context_length_exceeded():
    catalogue = catalogue_of(deployment("gpt", on="a", context_window=4096))

    with pytest.raises(NoCandidateError) as caught:
        select(catalogue=catalogue, model="gpt", needs=Needs(estimated_input_tokens=5000))

    assert (caught.value.status, caught.value.code) == (400, "context_length_exceeded")


def test_an_exhausted_budget_is_a_402():
    catalogue = catalogue_of(deployment("gpt", on="a", prices=("10", "10")))
    needs = Needs(estimated_input_tokens=1000, budget_remaining=Decimal("0.001"))

    with pytest.raises(NoCandidateError) as caught:
        select(catalogue=catalogue, model="gpt", needs=needs)

    assert (caught.value.status, caught.value.code) == (402, "budget_exceeded")


def test_allow_empty_answers_the_rejections_instead_of_raising():
    catalogue = catalogue_of(deployment("gpt", on="a", context_window=10))

    selection = select(
        catalogue=catalogue, model="gpt", needs=Needs(estimated_input_tokens=50), allow_empty=True
    )

    assert selection.candidates == ()
    assert selection.rejections[0].reason == "context window 10 < 50 tokens needed"
