"""Helpers for the usage, cost and budget tests: entries, a quiet ledger writer, Redis keys."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
import redis

from lumina.providers.services import budgets as budget_services
from lumina.providers.services import usage as usage_services
from lumina.providers.types import Usage, UsageEntry, UsageStatus
from tests.conftest import service_unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"
ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
BOB = uuid.UUID("00000000-0000-4000-8000-000000000b0b")
TOKEN = uuid.UUID("00000000-0000-4000-8000-0000000070c1")
OPENAI = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
ANTHROPIC = uuid.UUID("00000000-0000-4000-8000-0000000000a2")


def entry(**changes) -> UsageEntry:
    """A chat usage entry of ALICE on OPENAI's gpt-4o-mini, now, costing $0.001."""
    usage = changes.pop("usage", None) or Usage(input_tokens=100, output_tokens=20)
    values = {
        "id": uuid.uuid4(),
        "occurred_at": dt.datetime.now(dt.UTC),
        "request_id": "req-1",
        "operation": "chat",
        "status": UsageStatus.OK,
        "stream": False,
        "requested_model": "gpt-4o-mini",
        "usage": usage,
        "cost": Decimal("0.001"),
        "user_id": ALICE,
        "token_id": TOKEN,
        "provider_id": OPENAI,
        "provider_name": "openai",
        "deployment_id": uuid.uuid4(),
        "model": "gpt-4o-mini",
        "attempts": 1,
        "latency_ms": 120.0,
        **changes,
    }
    return UsageEntry(**values)


@pytest.fixture
def ledger(settings):
    """The ledger without its background thread: tests write with ``usage_flush()``."""
    settings.LUMINA_USAGE_WRITER_THREAD = False
    usage_services.usage_writer_stop(flush=False)
    usage_services._buffer.clear()
    usage_services._events.clear()
    usage_services._ready_months.clear()
    usage_services._suspect_ids.clear()
    yield usage_services
    usage_services.usage_writer_stop(flush=False)
    usage_services._buffer.clear()
    usage_services._events.clear()
    usage_services._ready_months.clear()


@pytest.fixture
def budgets(settings, ledger):
    """Fresh budget caches and counters; Redis off unless a test turns it on."""
    settings.REDIS_URL = None
    budget_services.budget_cache_invalidate()
    budget_services._local.clear()
    budget_services._redis_down_until = 0.0
    yield budget_services
    budget_services.budget_cache_invalidate()
    budget_services._local.clear()
    budget_services._redis_down_until = 0.0


@pytest.fixture
def redis_budgets(settings, budgets):
    """Budgets counted in the real Redis at 127.0.0.1:6379, under a prefix of this test's own."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        service_unavailable("Redis is not running on 127.0.0.1:6379")
    prefix = f"lumina-test:{uuid.uuid4().hex}:"
    settings.REDIS_URL = REDIS_URL
    settings.LUMINA_BUDGET_KEY_PREFIX = prefix
    yield SimpleNamespace(
        services=budgets,
        redis=client,
        keys_with_prefix=lambda: sorted(key.decode() for key in client.scan_iter(f"{prefix}*")),
    )
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def fresh_window(margin: float = 1.0) -> None:
    """Wait for a new 60-s rate window if this one ends within ``margin`` seconds."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)
