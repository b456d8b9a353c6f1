"""``manage.py providers add|list|prices import``: keys only from env or stdin, never echoed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from lumina.providers.models.registry import Deployment, Provider
from lumina.providers.pricing import SHIPPED_PATH
from lumina.providers.services.registry import deployment_record_probe
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    SECRET,
    fresh_registry_caches,
    stored_api_key,
)
from tests.providers.test_prices_import import LITELLM_TEXT
from tests.security.rbac_support import events_named

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("providers", *args, stdout=out)
    return out.getvalue()


def test_add_reads_the_key_from_an_environment_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_KEY_FOR_TEST", SECRET)
    out = _run(
        "add", "openai-main", "--kind", "openai", "--base-url", "https://api.openai.com/v1",
        "--api-key-env", "OPENAI_KEY_FOR_TEST", "--model", "gpt-4o", "--model", "fast=gpt-4o-mini",
        "--priority", "3", "--weight", "2",
    )  # fmt: skip
    assert SECRET not in out
    assert "stored encrypted" in out
    provider = Provider.objects.get(name="openai-main")
    assert (provider.priority, provider.weight) == (3, 2)
    assert provider.has_api_key
    assert SECRET not in stored_api_key(provider.pk)
    models = dict(
        Deployment.objects.filter(provider=provider).values_list("name", "upstream_model")
    )
    assert models == {"gpt-4o": "gpt-4o", "fast": "gpt-4o-mini"}
    assert "openai-main/fast -> gpt-4o-mini: in 0.15 / cached 0.075 / out 0.6" in out
    assert events_named("providers.ProviderAdded")


def test_add_reads_the_key_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{SECRET}\n"))
    out = _run(
        "add", "claude", "--kind", "anthropic", "--base-url", "https://api.anthropic.com",
        "--api-key-stdin",
    )  # fmt: skip
    assert SECRET not in out
    assert Provider.objects.get(name="claude").has_api_key


def test_a_key_cannot_be_given_on_the_command_line():
    with pytest.raises(CommandError):
        _run("add", "x", "--kind", "openai", "--base-url", "https://x.example", "--api-key", SECRET)
    assert not Provider.objects.filter(name="x").exists()


def test_an_empty_key_variable_is_refused(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(CommandError, match="NO_SUCH_KEY_VAR"):
        _run(
            "add", "x", "--kind", "openai", "--base-url", "https://x.example",
            "--api-key-env", "NO_SUCH_KEY_VAR",
        )  # fmt: skip


def test_bad_input_names_the_field_and_leaves_nothing_behind():
    with pytest.raises(CommandError, match="base_url"):
        _run("add", "x", "--kind", "openai", "--base-url", "not-a-url")
    with pytest.raises(CommandError, match="name"):
        _run("add", "y", "--kind", "openai", "--base-url", "https://y.example", "--model", "a/b")
    assert not Provider.objects.filter(name__in=["x", "y"]).exists()


def test_list_shows_providers_models_capabilities_and_prices(monkeypatch):
    monkeypatch.setenv("KEY_FOR_LIST", SECRET)
    _run(
        "add", "openai-main", "--kind", "openai", "--base-url", "https://api.openai.com/v1",
        "--api-key-env", "KEY_FOR_LIST", "--model", "gpt-4o",
    )  # fmt: skip
    model = Deployment.objects.get(name="gpt-4o")
    deployment_record_probe(deployment_id=model.pk, results={"chat": {"ok": True}})
    out = _run("list")
    assert SECRET not in out
    assert stored_api_key(model.provider_id) not in out
    assert "openai-main  openai  https://api.openai.com/v1  enabled  key stored" in out
    assert "gpt-4o" in out
    assert "capabilities: chat, json_mode, streaming, tools, vision" in out
    assert "in 2.5 / cached 1.25 / out 10" in out
    assert "[lumina-2026-11-01]" in out
    assert "local  local  -  enabled  no key" in out
    assert "lumina-dev-chat" in out


def test_prices_import_prints_counts_and_reasons(tmp_path):
    path = tmp_path / "litellm.json"
    path.write_text(LITELLM_TEXT)
    out = _run("prices", "import", str(path))
    assert "(litellm, source litellm)" in out
    assert "added:     6" in out
    assert "updated:   0" in out
    assert "skipped:   7" in out
    assert "dall-e-3: mode 'image_generation' is not priced per token by Lumina" in out
    data = json.loads(LITELLM_TEXT)
    data["o4-mini"]["output_cost_per_token"] = 5e-06
    path.write_text(json.dumps(data))
    again = _run("prices", "import", str(path), "--format", "litellm")
    assert "updated:   1" in again
    assert "unchanged: 5" in again


def test_prices_import_of_the_shipped_file():
    out = _run("prices", "import", str(SHIPPED_PATH), "--format", "lumina")
    assert "source lumina-2026-11-01" in out
    assert "skipped:   0" in out


def test_prices_import_of_a_bad_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(CommandError, match="file: not valid JSON"):
        _run("prices", "import", str(path))


def test_the_command_line_help_runs_as_a_process():
    result = subprocess.run(
        [sys.executable, "manage.py", "providers", "add", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--api-key-env" in result.stdout
    assert "--api-key-stdin" in result.stdout
