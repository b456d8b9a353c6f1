"""The offline ``local`` provider: seeded once, kept out of production and out of auto-routing.

``lumina-dev-chat`` answers "You said: …". It must never serve ``lumina/auto`` (any strategy)
while a real chat model is enabled, must not be seeded in production, and an operator's
removal or disabling of it must survive ``migrate``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumina.kernel.models import OutboxEvent
from lumina.providers import api
from lumina.providers.adapters.http import close_sessions
from lumina.providers.models import Deployment, Provider, Seed
from lumina.providers.selectors.registry import catalogue
from lumina.providers.selectors.selection import HELD_BACK, select
from lumina.providers.services.local import local_provider_ensure
from lumina.providers.services.registry import (
    deployment_delete,
    deployment_update,
    provider_delete,
)
from lumina.providers.services.usage import usage_flush
from lumina.providers.types import Capability, Needs, ProviderKind, Strategy
from lumina.security.api import Actor
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.gateway_support import usage_rows

SYSTEM = Actor.system("tests")
MEMORY = Actor.system("memory")
DEV = "lumina-dev-chat"
MINILM = "all-MiniLM-L6-v2"
STRATEGIES = [strategy.value for strategy in Strategy]


def _local_models() -> dict[str, Deployment]:
    return {d.name: d for d in Deployment.objects.filter(provider__name="local")}


def _fresh_database() -> None:
    """What a new database looks like before its first ``post_migrate``."""
    Provider.objects.filter(name="local").delete()
    Seed.objects.all().delete()


def _migrate() -> None:
    call_command("migrate", interactive=False, verbosity=0)


# --- Seeding -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_fresh_install_has_a_chat_and_an_embedding_model():
    local = Provider.objects.get(name="local")
    assert local.kind == "local"
    assert local.base_url == ""
    models = _local_models()
    assert set(models) == {DEV, MINILM}
    chat, embed = models[DEV], models[MINILM]
    assert set(chat.capabilities) == {"chat", "streaming", "json_mode", "tools"}
    assert chat.context_window == 8192
    assert embed.capabilities == ["embeddings"]
    assert embed.context_window == 256
    assert chat.input_price == chat.output_price == embed.input_price == 0
    assert [d.provider.name for d in catalogue().resolve(DEV)] == ["local"]
    assert set(Seed.objects.values_list("name", flat=True)) == {f"local/{DEV}", f"local/{MINILM}"}


@pytest.mark.django_db
def test_seeding_again_writes_nothing_and_publishes_nothing():
    OutboxEvent.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        local_provider_ensure()
    writes = [q["sql"] for q in queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes == []
    assert Provider.objects.filter(name="local").count() == 1
    assert not OutboxEvent.objects.exists()  # seed data, like the built-in roles


@pytest.mark.django_db
def test_a_deleted_development_model_stays_deleted_after_migrate():
    dev = _local_models()[DEV]
    deployment_delete(actor=SYSTEM, deployment_id=dev.pk)
    _migrate()
    assert set(_local_models()) == {MINILM}
    assert not catalogue().resolve(DEV)


@pytest.mark.django_db
def test_a_deleted_local_provider_stays_deleted_after_migrate():
    provider_delete(actor=SYSTEM, provider_id=Provider.objects.get(name="local").pk)
    _migrate()
    assert not Provider.objects.filter(name="local").exists()


@pytest.mark.django_db
def test_a_disabled_development_model_stays_disabled_after_migrate():
    dev = _local_models()[DEV]
    deployment_update(actor=SYSTEM, deployment_id=dev.pk, enabled=False)
    _migrate()
    assert _local_models()[DEV].enabled is False


@pytest.mark.django_db
def test_migrate_seeds_a_fresh_database():
    _fresh_database()
    _migrate()
    assert set(_local_models()) == {DEV, MINILM}


@pytest.mark.django_db
def test_production_is_never_seeded_with_the_development_model(settings):
    settings.LUMINA_ENV = "production"
    _fresh_database()
    _migrate()
    assert set(_local_models()) == {MINILM}  # real embeddings only
    assert not catalogue().resolve(DEV)
    assert not Seed.objects.filter(name=f"local/{DEV}").exists()


@pytest.mark.django_db
def test_the_name_local_taken_by_another_kind_is_left_alone():
    _fresh_database()
    ProviderFactory(name="local", kind=ProviderKind.OPENAI_COMPATIBLE.value)
    assert local_provider_ensure() is None
    assert not _local_models()


# --- Selection: the development model and real chat models ----------------------------


def _real_chat(**provider):
    """A real chat model priced above zero, ranked below the local provider by priority."""
    return DeploymentFactory(
        provider=ProviderFactory(name="real", priority=-10, **provider),
        name="real-chat",
        capabilities=[Capability.CHAT, Capability.STREAMING, Capability.JSON_MODE],
        input_price=Decimal(5),
        output_price=Decimal(15),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_selection_holds_back_the_development_model_when_a_real_one_is_enabled(strategy):
    _real_chat()
    needs = Needs(capabilities=frozenset({Capability.CHAT}), strategy=Strategy(strategy))
    chosen = select(catalogue=catalogue(), model=f"lumina/auto:{strategy}", needs=needs)
    assert [c.deployment.qualified_name for c in chosen.candidates] == ["real/real-chat"]
    held = [r for r in chosen.rejections if r.deployment.name == DEV]
    assert [r.reason for r in held] == [HELD_BACK]


@pytest.mark.django_db
def test_the_development_model_still_answers_when_named():
    _real_chat()
    needs = Needs(capabilities=frozenset({Capability.CHAT}))
    chosen = select(catalogue=catalogue(), model=DEV, needs=needs)
    assert [c.deployment.qualified_name for c in chosen.candidates] == [f"local/{DEV}"]


@pytest.mark.django_db
def test_a_real_model_whose_circuit_is_open_is_not_replaced_by_the_development_model():
    real = _real_chat()
    needs = Needs(capabilities=frozenset({Capability.CHAT}))
    chosen = select(
        catalogue=catalogue(),
        model="lumina/auto",
        needs=needs,
        breaker_states={real.pk: "open"},
        allow_empty=True,
    )
    assert chosen.candidates == ()


@pytest.mark.django_db
def test_a_disabled_real_model_lets_the_development_model_serve():
    _real_chat(enabled=False)
    needs = Needs(capabilities=frozenset({Capability.CHAT}))
    chosen = select(catalogue=catalogue(), model="lumina/auto", needs=needs)
    assert [c.deployment.name for c in chosen.candidates] == [DEV]


@pytest.mark.django_db
def test_embeddings_from_the_local_provider_still_join_auto_routing():
    _real_chat()
    needs = Needs(capabilities=frozenset({Capability.EMBEDDINGS}))
    chosen = select(catalogue=catalogue(), model="lumina/auto", needs=needs)
    assert [c.deployment.name for c in chosen.candidates] == [MINILM]


# --- Who served: providers.api.complete through each strategy ---------------------------


def _served(strategy: str, calls: int = 3) -> list[tuple[str, str]]:
    """(provider that served, reply) for ``calls`` completions through ``lumina/auto``."""
    replies = [
        api.complete(
            [{"role": "user", "content": "hello there"}],
            actor=MEMORY,
            model=f"lumina/auto:{strategy}",
        )["choices"][0]["message"]["content"]
        for _ in range(calls)
    ]
    usage_flush()
    providers = [row.provider_name for row in usage_rows()]
    return list(zip(providers, replies, strict=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_without_a_real_provider_auto_is_served_by_the_development_model(strategy):
    served = _served(strategy)
    assert [provider for provider, _reply in served] == ["local"] * 3
    assert all("You said: hello there" in reply for _provider, reply in served)


@pytest.fixture
def api_sessions_closed():
    """Close the pooled client that ``providers.api``'s own loop opened to the upstream."""
    yield
    asyncio.run_coroutine_threadsafe(close_sessions(), api._loop).result(timeout=10)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.usefixtures("api_sessions_closed")
def test_with_a_real_provider_auto_is_never_served_by_the_development_model(
    strategy, openai_upstream
):
    _real_chat(kind=ProviderKind.OPENAI_COMPATIBLE.value, base_url=openai_upstream.url)
    served = _served(strategy)
    assert [provider for provider, _reply in served] == ["real"] * 3
    assert not any("You said" in reply for _provider, reply in served)
    assert len(openai_upstream.requests) == 3  # the upstream really answered each call
