"""POST /api/v1/providers/select: ranked candidates with reasons, over the real registry."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from lumina.kernel.resilience import CircuitBreaker
from lumina.providers import resilience
from lumina.providers.selectors.selection import reset_round_robin
from lumina.providers.types import Capability
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    fresh_registry_caches,
    user_with_role,
)
from tests.security.rbac_support import assert_error, make_user

pytestmark = pytest.mark.django_db

SELECT = "/api/v1/providers/select"


@pytest.fixture(autouse=True)
def own_breaker(monkeypatch) -> CircuitBreaker:
    """The endpoint reads this test's breaker, not the process's."""
    breaker = resilience.provider_breaker(redis_url=None, failures=1, notify=None)
    monkeypatch.setattr(resilience, "circuit_breaker", lambda: breaker)
    reset_round_robin()
    return breaker


@pytest.fixture
def viewer() -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role("Viewer"))
    return client


@pytest.fixture
def served_twice():
    """'sel-mini' from a cheap and a dear provider, and a vision model elsewhere."""
    cheap = DeploymentFactory(
        name="sel-mini",
        provider=ProviderFactory(name="sel-cheap", priority=1),
        input_price=Decimal("0.10"),
        output_price=Decimal("0.40"),
    )
    dear = DeploymentFactory(
        name="sel-mini",
        provider=ProviderFactory(name="sel-dear", priority=9),
        input_price=Decimal("1"),
        output_price=Decimal("4"),
        aliases=["sel-alias"],
    )
    seer = DeploymentFactory(
        name="sel-seer",
        provider=ProviderFactory(name="sel-vision"),
        capabilities=[Capability.CHAT.value, Capability.VISION.value],
        input_price=Decimal("2"),
        output_price=Decimal("8"),
    )
    return cheap, dear, seer


def test_answers_ranked_candidates_with_prices_and_reasons(viewer, served_twice):
    cheap, _dear, _seer = served_twice

    response = viewer.post(
        SELECT,
        {
            "model": "sel-mini",
            "strategy": "cheapest",
            "estimated_input_tokens": 1000,
            "estimated_output_tokens": 1000,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["model"], body["strategy"]) == ("sel-mini", "cheapest")
    assert [c["qualified_name"] for c in body["candidates"]] == [
        "sel-cheap/sel-mini",
        "sel-dear/sel-mini",
    ]
    first = body["candidates"][0]
    assert first["rank"] == 1
    assert first["provider"] == "sel-cheap"
    assert first["model"] == "sel-mini"
    assert first["deployment_id"] == str(cheap.id)
    assert first["prices"]["input"] == "0.1"
    assert first["prices"]["output"] == "0.4"
    assert first["score"] == pytest.approx(0.0005)
    assert first["reason"] == "cheapest: $0.0005 est. (input 0.1/M, output 0.4/M)"
    assert body["rejections"] == []


def test_lumina_auto_with_a_strategy_ranks_every_model_and_explains_rejections(
    viewer, served_twice
):
    _cheap, _dear, seer = served_twice

    response = viewer.post(
        SELECT,
        {"model": "lumina/auto:priority", "capabilities": ["chat", "vision"]},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["strategy"] == "priority"
    assert [c["deployment_id"] for c in body["candidates"]] == [str(seer.id)]
    reasons = {r["qualified_name"]: r["reason"] for r in body["rejections"]}
    assert reasons["sel-cheap/sel-mini"] == "missing capabilities: vision"
    assert reasons["sel-dear/sel-mini"] == "missing capabilities: vision"


def test_an_open_circuit_is_listed_as_a_rejection(viewer, served_twice, own_breaker):
    from lumina.providers.adapters.base import UpstreamError
    from lumina.providers.selectors.registry import catalogue

    cheap_dto = next(d for d in catalogue().deployments if d.provider.name == "sel-cheap")
    asyncio.run(own_breaker.record_failure(cheap_dto.id, UpstreamError("down", status=503)))

    response = viewer.post(SELECT, {"model": "sel-mini"}, format="json")

    body = response.json()
    assert [c["provider"] for c in body["candidates"]] == ["sel-dear"]
    assert body["rejections"] == [
        {
            "deployment_id": str(cheap_dto.id),
            "provider": "sel-cheap",
            "model": "sel-mini",
            "qualified_name": "sel-cheap/sel-mini",
            "reason": "circuit open",
        }
    ]


def test_nothing_fitting_is_an_answer_not_an_error(viewer, served_twice):
    response = viewer.post(
        SELECT, {"model": "sel-alias", "max_price": "1.5", "tags": ["eu"]}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["candidates"] == []
    assert [r["reason"] for r in body["rejections"]] == ["missing tags: eu"]


def test_an_unknown_model_is_a_404(viewer, served_twice):
    response = viewer.post(SELECT, {"model": "sel-nonexistent"}, format="json")

    error = assert_error(response, 404, "model_not_found", field="model")
    assert "sel-nonexistent" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"capabilities": ["telepathy"]}, "capabilities"),
        ({"capabilities": "chat"}, "capabilities"),
        ({"strategy": "random"}, "strategy"),
        ({"max_price": "cheap"}, "max_price"),
        ({"max_price": "-1"}, "max_price"),
        ({"min_context_window": -5}, "min_context_window"),
        ({"estimated_input_tokens": "many"}, "estimated_input_tokens"),
        ({"estimated_output_tokens": -1}, "estimated_output_tokens"),
        ({"tags": "eu"}, "tags"),
        ({"model": "x" * 301}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(viewer, body, field):
    response = viewer.post(SELECT, body, format="json")

    assert_error(response, 400, "invalid", field=field)


def test_needs_permission_to_read_providers():
    client = APIClient()
    client.force_authenticate(make_user())

    response = client.post(SELECT, {}, format="json")

    assert_error(response, 403, "permission_denied")


def test_needs_authentication():
    response = APIClient().post(SELECT, {}, format="json")

    assert response.status_code == 401
