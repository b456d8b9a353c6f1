"""Contexts' start-up and shutdown hooks: registered from AppConfig.ready, run by the hosts."""

from __future__ import annotations

import asyncio

import pytest
from celery import signals

from lumina.kernel import lifecycle
from lumina.kernel.relay import relay_running, relay_stop


@pytest.fixture
def own_hooks(monkeypatch):
    """An empty registry for the test; the apps' own hooks come back afterwards."""
    monkeypatch.setattr(lifecycle, "_startup", {})
    monkeypatch.setattr(lifecycle, "_shutdown", {})


def _lifespan(application) -> list[str]:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(application({"type": "lifespan"}, receive, send))
    return sent


# -- the registry --------------------------------------------------------------------------


def test_startup_runs_in_order_and_shutdown_in_reverse_sync_and_async_alike(own_hooks):
    ran: list[str] = []

    def first() -> None:
        ran.append("first up")

    async def second() -> None:
        ran.append("second up")

    async def close_first() -> None:
        ran.append("first down")

    def close_second() -> None:
        ran.append("second down")

    lifecycle.on_startup(first)
    lifecycle.on_startup(second)
    lifecycle.on_shutdown(close_first)
    lifecycle.on_shutdown(close_second)

    asyncio.run(lifecycle.startup(lifecycle.WEB))
    asyncio.run(lifecycle.shutdown(lifecycle.WEB))

    assert ran == ["first up", "second up", "second down", "first down"]


def test_a_failing_shutdown_hook_does_not_stop_the_others(own_hooks):
    ran: list[str] = []

    def still_runs() -> None:
        ran.append("still runs")

    def broken() -> None:
        raise RuntimeError("boom")

    lifecycle.on_shutdown(still_runs)
    lifecycle.on_shutdown(broken)

    lifecycle.shutdown_sync(lifecycle.WORKER)
    asyncio.run(lifecycle.shutdown(lifecycle.WEB))

    assert ran == ["still runs", "still runs"]


def test_hooks_run_only_in_the_processes_they_were_registered_for(own_hooks):
    ran: list[str] = []

    def web_only() -> None:
        ran.append("web")

    async def everywhere() -> None:
        ran.append("everywhere")

    lifecycle.on_shutdown(web_only, where=(lifecycle.WEB,))
    lifecycle.on_shutdown(everywhere)

    lifecycle.shutdown_sync(lifecycle.WORKER)

    assert ran == ["everywhere"]


def test_registering_a_hook_twice_runs_it_once(own_hooks):
    ran: list[str] = []

    def once() -> None:
        ran.append("once")

    lifecycle.on_shutdown(once)
    lifecycle.on_shutdown(once)
    lifecycle.shutdown_sync(lifecycle.WORKER)

    assert ran == ["once"]


def test_a_failing_startup_hook_fails_the_asgi_start(own_hooks):
    from config.asgi import application

    def broken() -> None:
        raise RuntimeError("cannot start")

    lifecycle.on_startup(broken)

    assert _lifespan(application) == ["lifespan.startup.failed"]


# -- what the contexts registered ----------------------------------------------------------


def test_the_apps_register_their_hooks_from_ready():
    assert lifecycle.hooks("startup", lifecycle.WEB) == [
        "lumina.kernel.relay.relay_start",
        "lumina.security.services.token_refusals.refusals_timer_start",
        "lumina.tools.sandbox.runner.sandbox_start",
        "lumina.ui.realtime.fanout.adopt_server_loop",
        "lumina.platform.apps.gc_freeze",
    ]
    assert lifecycle.hooks("shutdown", lifecycle.WEB)[:5] == [
        "lumina.platform.asgi.ReusedThreadsASGIHandler.close_idle_threads",
        "lumina.tools.sandbox.runner.close_pools",
        "lumina.tools.mcp.mcp_stop",
        "lumina.providers.apps.provider_sessions_close",
        "lumina.providers.apps.usage_write_buffered",
    ]
    assert lifecycle.hooks("shutdown", lifecycle.WEB)[-1] == "lumina.kernel.relay.relay_stop"
    assert lifecycle.hooks("shutdown", lifecycle.WORKER) == [
        "lumina.tools.sandbox.runner.close_pools",
        "lumina.tools.mcp.mcp_stop",
        "lumina.providers.apps.usage_write_buffered",
    ]


@pytest.mark.parametrize(("transport", "relay"), [("inprocess", True), ("celery", False)])
def test_the_named_transport_decides_whether_the_web_process_runs_the_relay(
    settings, transport, relay
):
    from lumina.kernel import bus

    settings.LUMINA_EVENT_TRANSPORT = transport
    seen = []
    try:
        asyncio.run(lifecycle.startup(lifecycle.WEB))
        seen.append(relay_running())
        seen.append(type(bus.transport()).__name__)
    finally:
        relay_stop()

    assert seen == [
        relay,
        {"inprocess": "InProcessTransport", "celery": "CeleryTransport"}[transport],
    ]


@pytest.mark.django_db(transaction=True)
def test_asgi_shutdown_writes_buffered_usage_and_closes_provider_connections(settings):
    from config.asgi import application
    from lumina.providers.adapters import http
    from lumina.providers.models.usage import UsageRecord
    from lumina.providers.services import usage
    from tests.providers.usage_support import entry

    settings.LUMINA_EVENT_TRANSPORT = "celery"  # no relay thread: this test is about shutdown
    settings.LUMINA_USAGE_WRITER_THREAD = False
    buffered = entry()
    usage.usage_submit(buffered)
    sessions = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive():
        message = next(messages)
        if message["type"] == "lifespan.shutdown":
            sessions.append(http.session())  # a pooled session of the server's loop
        return message

    async def send(message):
        pass

    assert not UsageRecord.objects.filter(pk=buffered.id).exists()
    asyncio.run(application({"type": "lifespan"}, receive, send))

    assert UsageRecord.objects.filter(pk=buffered.id).exists()
    assert len(sessions) == 1
    assert sessions[0].closed


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_process_writes_buffered_usage_when_it_stops(settings):
    import config.celery  # noqa: F401 (connects the worker's signal handlers)
    from lumina.providers.models.usage import UsageRecord
    from lumina.providers.services import usage
    from tests.providers.usage_support import entry

    settings.LUMINA_USAGE_WRITER_THREAD = False
    buffered = entry()
    usage.usage_submit(buffered)
    assert not UsageRecord.objects.filter(pk=buffered.id).exists()

    signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)

    assert UsageRecord.objects.filter(pk=buffered.id).exists()
