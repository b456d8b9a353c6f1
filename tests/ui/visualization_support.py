"""Helpers for the visualization tests: people with each role, clients, specs, usage rows."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from rest_framework.test import APIClient

from lumina.providers.services.usage import usage_flush, usage_submit
from lumina.providers.types import Usage, UsageStatus
from lumina.security.models.users import User
from tests.providers.usage_support import entry
from tests.security.rbac_support import give_role

BASE = "/api/v1/visualizations"


def user_with_role(role: str | None, **extra) -> User:
    # No password: hashing one costs most of a test's set-up.
    user = User.objects.create_user(f"{uuid.uuid4().hex[:10]}@example.com", None, **extra)
    if role is not None:
        give_role(user, role)
    return user


def client_as(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


class People:
    """Users created on first use: ``nobody`` (no role), ``viewer``, ``developer``,
    ``other_developer``, ``admin`` and ``staff`` (is_staff, no role: staff grants nothing)."""

    ROLES = {
        "nobody": (None, {}),
        "viewer": ("Viewer", {}),
        "developer": ("Developer", {}),
        "other_developer": ("Developer", {}),
        "admin": ("Admin", {}),
        "staff": (None, {"is_staff": True}),
    }

    def __getattr__(self, name: str) -> User:
        if name not in self.ROLES:
            raise AttributeError(name)
        role, extra = self.ROLES[name]
        user = user_with_role(role, **extra)
        setattr(self, name, user)
        return user


def bar_spec(source: str = "lumina:usage", **params) -> dict:
    """A bar chart of ``source`` (by day unless ``params`` say otherwise)."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"name": source, "params": params or {"group_by": "day", "days": 30}},
        "mark": "bar",
        "encoding": {
            "x": {"field": "day", "type": "temporal"},
            "y": {"field": "cost", "type": "quantitative"},
        },
    }


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    return error


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def record_usage(capture, *items) -> None:
    """Write ledger entries and run the daily projection, as a real request would."""
    for item in items:
        usage_submit(item)
    with capture(execute=True):
        usage_flush()


def usage_entry(
    user: User,
    when: dt.datetime,
    *,
    cost: str = "0.001",
    model: str = "gpt-4o-mini",
    input_tokens: int = 100,
    output_tokens: int = 20,
    latency_ms: float = 120.0,
    ttft_ms: float | None = None,
    status: UsageStatus = UsageStatus.OK,
):
    return entry(
        user_id=user.pk,
        token_id=None,
        occurred_at=when,
        cost=Decimal(cost),
        model=model,
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        latency_ms=latency_ms,
        status=status,
        **({"ttft_ms": ttft_ms} if ttft_ms is not None else {}),
    )
