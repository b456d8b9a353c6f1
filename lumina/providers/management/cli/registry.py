"""``providers add|list`` and ``providers prices import``: the registry from the command line.

API keys never go on the command line, where ``ps`` and shell history would keep them:
``--api-key-env VAR`` names an environment variable, ``--api-key-stdin`` reads one line.
"""

from __future__ import annotations

import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lumina.kernel.errors import ApplicationError
from lumina.providers.pricing import FORMATS, describe
from lumina.providers.selectors.registry import deployment_list, provider_list
from lumina.providers.services.registry import deployment_create, prices_import, provider_create
from lumina.providers.types import ProviderKind
from lumina.security.api import Actor

CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    add = commands.add_parser("add", help="Register a provider (and some of its models).")
    add.add_argument("name", metavar="NAME", help="A slug such as openai-main.")
    add.add_argument("--kind", required=True, choices=[k.value for k in ProviderKind])
    add.add_argument("--base-url", default="", help="Required for every kind but local.")
    key = add.add_mutually_exclusive_group()
    key.add_argument("--api-key-env", metavar="VAR", help="Read the API key from $VAR.")
    key.add_argument(
        "--api-key-stdin", action="store_true", help="Read the API key from the first stdin line."
    )
    add.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[=UPSTREAM]",
        help="A model to add (repeatable); prices come from the price tables.",
    )
    add.add_argument("--priority", type=int, default=0)
    add.add_argument("--weight", type=int, default=1)
    add.add_argument("--api-version", default="", help="Azure OpenAI's api-version.")
    add.add_argument("--tag", action="append", default=[], dest="tags", metavar="TAG")
    add.add_argument("--disabled", action="store_true", help="Register it switched off.")
    add.set_defaults(handler=add_provider)

    listing = commands.add_parser("list", help="Providers with their models, capabilities, prices.")
    listing.set_defaults(handler=list_providers)

    prices = commands.add_parser("prices", help="The price list.")
    actions = prices.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    load = actions.add_parser(
        "import", help="Import a price table: ours, or LiteLLM's model_prices_and_context_window."
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument("--format", default="auto", choices=FORMATS)
    load.set_defaults(handler=import_prices)


def _describe(error: ApplicationError) -> str:
    details = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in error.fields.items())
    return f"{error.message} {details}".strip()


def _api_key(api_key_env: str | None, api_key_stdin: bool) -> str | None:
    if api_key_env:
        value = os.environ.get(api_key_env, "")
        if not value:
            raise CommandError(f"--api-key-env: the environment variable {api_key_env} is empty")
        return value.strip()
    if api_key_stdin:
        value = sys.stdin.readline().strip()
        if not value:
            raise CommandError("--api-key-stdin: no key on standard input")
        return value
    return None


def _model_spec(spec: str) -> tuple[str, str | None]:
    name, _, upstream = spec.partition("=")
    if not name.strip():
        raise CommandError(f"--model {spec!r}: give NAME or NAME=UPSTREAM")
    return name.strip(), upstream.strip() or None


def add_provider(
    command: BaseCommand,
    *,
    name: str,
    kind: str,
    base_url: str,
    api_key_env: str | None,
    api_key_stdin: bool,
    model: list[str],
    priority: int,
    weight: int,
    api_version: str,
    tags: list[str],
    disabled: bool,
    **_,
) -> None:
    models = [_model_spec(spec) for spec in model]
    api_key = _api_key(api_key_env, api_key_stdin)
    try:
        # All or nothing: a bad model leaves no half-registered provider behind.
        with transaction.atomic():
            provider = provider_create(
                actor=CLI_ACTOR,
                name=name,
                kind=kind,
                base_url=base_url,
                api_key=api_key,
                enabled=not disabled,
                priority=priority,
                weight=weight,
                api_version=api_version,
                tags=tags,
            )
            added = [
                deployment_create(
                    actor=CLI_ACTOR,
                    provider_id=provider.id,
                    name=model_name,
                    upstream_model=upstream,
                )
                for model_name, upstream in models
            ]
    except ApplicationError as error:
        raise CommandError(f"cannot add provider {name}: {_describe(error)}") from None
    command.stdout.write(f"added provider {provider.name} ({provider.kind}) {provider.id}")
    command.stdout.write(f"  api key: {'stored encrypted' if provider.has_api_key else 'none'}")
    for deployment in added:
        command.stdout.write(
            f"  model {deployment.qualified_name} -> {deployment.upstream_model}: "
            f"{describe(deployment.prices)} per 1M tokens [{deployment.price_source}]"
        )


def list_providers(command: BaseCommand, **_) -> None:
    providers = provider_list()
    if not providers:
        command.stdout.write("no providers")
        return
    models: dict = {}
    for deployment in deployment_list():
        models.setdefault(deployment.provider.id, []).append(deployment)
    for provider in providers:
        state = "enabled" if provider.enabled else "disabled"
        key = "key stored" if provider.has_api_key else "no key"
        command.stdout.write(
            f"{provider.name}  {provider.kind}  {provider.base_url or '-'}  {state}  {key}  "
            f"priority {provider.priority}  weight {provider.weight}"
        )
        rows = models.get(provider.id, [])
        if not rows:
            command.stdout.write("    (no models)")
        for deployment in rows:
            upstream = (
                f" -> {deployment.upstream_model}"
                if deployment.upstream_model != deployment.name
                else ""
            )
            off = "" if deployment.enabled else "  (disabled)"
            command.stdout.write(f"    {deployment.name}{upstream}{off}")
            command.stdout.write(
                f"        capabilities: {', '.join(sorted(deployment.capabilities)) or '-'}"
                f"  context {deployment.context_window}"
                + (
                    f"  max output {deployment.max_output_tokens}"
                    if deployment.max_output_tokens
                    else ""
                )
            )
            command.stdout.write(
                f"        prices per 1M tokens: {describe(deployment.prices)}"
                f"  [{deployment.price_source}]"
            )


def import_prices(command: BaseCommand, *, file: str, format: str, **_) -> None:
    try:
        report = prices_import(actor=CLI_ACTOR, path_or_data=file, format=format)
    except ApplicationError as error:
        raise CommandError(f"cannot import {file}: {_describe(error)}") from None
    command.stdout.write(f"imported {file} ({report.format}, source {report.source})")
    command.stdout.write(f"  added:     {report.added}")
    command.stdout.write(f"  updated:   {report.updated}")
    command.stdout.write(f"  unchanged: {report.unchanged}")
    command.stdout.write(f"  skipped:   {len(report.skipped)}")
    for model, reason in report.skipped:
        command.stdout.write(f"    {model}: {reason}")
    command.stdout.write(f"  models re-priced: {report.deployments_repriced}")
