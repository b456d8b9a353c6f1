"""Token buckets and prices: each kind of token is priced once, at its own price."""

from __future__ import annotations

from decimal import Decimal

from lumina.providers.types import Prices, Usage


def test_openai_totals_are_split_into_disjoint_buckets():
    usage = Usage.from_openai(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20},
            "completion_tokens_details": {"reasoning_tokens": 25},
        }
    )
    assert usage == Usage(
        input_tokens=50,
        cached_input_tokens=30,
        cache_write_tokens=20,
        output_tokens=15,
        reasoning_tokens=25,
    )
    assert Usage.from_openai(usage.to_openai()) == usage
    assert usage.total_tokens == 140


def test_details_larger_than_their_totals_are_clamped():
    usage = Usage.from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 50},
            "completion_tokens_details": {"reasoning_tokens": 9},
        }
    )
    assert (usage.input_tokens, usage.cached_input_tokens) == (0, 10)
    assert (usage.output_tokens, usage.reasoning_tokens) == (0, 5)


def test_each_bucket_has_its_price_and_missing_ones_fall_back():
    usage = Usage(
        input_tokens=1_000_000,
        cached_input_tokens=1_000_000,
        cache_write_tokens=1_000_000,
        output_tokens=1_000_000,
        reasoning_tokens=1_000_000,
    )
    priced = Prices(
        input=Decimal(3),
        output=Decimal(15),
        cached_input=Decimal("0.3"),
        cache_write=Decimal("3.75"),
        reasoning=Decimal(10),
    )
    assert priced.cost(usage) == Decimal("32.05")
    # Without their own prices: cached and cache writes at input, reasoning at output.
    assert Prices(input=Decimal(3), output=Decimal(15)).cost(usage) == Decimal(39)


def test_no_usage_means_no_cost():
    assert Usage.from_openai(None) is None
    assert Prices(input=Decimal(1), output=Decimal(1)).cost(Usage()) == 0
