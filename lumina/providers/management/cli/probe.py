"""``providers probe NAME``: call a provider's models and record which capabilities work."""

from __future__ import annotations

import asyncio

from django.core.management.base import CommandError

from lumina.providers.adapters.http import close_sessions
from lumina.providers.resilience import latency_stats
from lumina.providers.selectors.registry import deployment_list, endpoint_for, provider_get_by_name
from lumina.providers.services.probe import deployment_probe
from lumina.providers.services.registry import deployment_record_probe
from lumina.providers.types import Capability


def register(commands) -> None:
    probe = commands.add_parser(
        "probe", help="Call each model of a provider once per capability; record what works."
    )
    probe.add_argument("name", help="The provider's name.")
    probe.add_argument("--model", action="append", default=[], help="Only this model (repeat).")
    probe.add_argument(
        "--all",
        action="store_true",
        help="Try every capability, not only those declared (finds undeclared ones).",
    )
    probe.add_argument("--timeout", type=float, default=30.0, help="Seconds per check.")
    probe.set_defaults(handler=run_probe)


def run_probe(command, *, name: str, model: list[str], all: bool, timeout: float, **_) -> None:
    provider = provider_get_by_name(name=name)
    if provider is None:
        raise CommandError(f"No provider named {name!r}.")
    deployments = [
        d for d in deployment_list(provider_id=provider.id) if not model or d.name in model
    ]
    if not deployments:
        raise CommandError(f"Provider {name!r} has no models to probe.")
    endpoints = [endpoint_for(d) for d in deployments]
    wanted = frozenset(Capability) if all else None

    async def probe_all():
        try:
            return [
                await deployment_probe(d, e, capabilities=wanted, timeout=timeout)
                for d, e in zip(deployments, endpoints, strict=True)
            ]
        finally:
            await close_sessions()

    failures = 0
    for deployment, results in zip(deployments, asyncio.run(probe_all()), strict=True):
        deployment_record_probe(
            deployment_id=deployment.id,
            results={r.capability.value: r.as_record() for r in results},
        )
        chat = [r for r in results if r.ok and r.capability is Capability.CHAT]
        if chat:
            latency_stats().seed(deployment.id, chat[0].latency_ms)
        for result in results:
            failures += not result.ok
            mark = "ok  " if result.ok else "FAIL"
            detail = f"  {result.error}" if result.error else ""
            command.stdout.write(
                f"{mark} {deployment.name:<32} {result.capability.value:<11} "
                f"{result.latency_ms:8.1f} ms{detail}"
            )
    command.stdout.write(f"{failures} check(s) failed." if failures else "Every check passed.")
