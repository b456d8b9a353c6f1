"""A real Lumina server (``manage.py serve``) on the test database, loopback providers, and
Debian's Chromium driven by Playwright, for the console's browser tests.

The server and its data live for the whole module: starting Lumina and Chromium per test
would cost more than the tests. The data is written once, outside any test transaction,
and the database is flushed at the end, as pytest-django's transactional tests do.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyotp
import pytest

from tests.conftest import database_url_for_subprocess
from tests.providers.upstreams import openai
from tests.providers.upstreams.base import Script, UpstreamServer

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
BUNDLES = ROOT / "lumina" / "ui" / "static" / "console" / "manifest.json"
ARTEFACTS = ROOT / "var" / "artefacts" / "console"
PASSWORD = "a long console passphrase 42"
ANSWER = "Streaming from the loopback provider, one piece at a time."
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
]


@dataclasses.dataclass
class World:
    base: str
    email: str
    totp: pyotp.TOTP
    user_id: str
    upstream: UpstreamServer
    tool_name: str
    log: Path
    last_step: int = 0  # the authenticator step whose code was used last

    def fresh_code(self) -> str:
        """A code not used yet: a used one is refused as a replay, so wait for the next."""
        step = int(time.time() // self.totp.interval)
        if step <= self.last_step:
            time.sleep((self.last_step + 1) * self.totp.interval - time.time() + 0.2)
            step = int(time.time() // self.totp.interval)
        self.last_step = step
        return self.totp.now()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(upstream: UpstreamServer) -> tuple[str, pyotp.TOTP, str, str]:
    """A Developer with an authenticator app, a provider with two models, a tool."""
    from lumina.security.models.rbac import Role, RoleAssignment
    from lumina.security.models.users import User
    from lumina.security.services import mfa
    from lumina.security.types import Actor
    from lumina.tools.services.registry import tool_create
    from tests.providers.factories import DeploymentFactory, ProviderFactory

    email = "console.dev@example.com"
    user = User.objects.create_user(email, PASSWORD)
    RoleAssignment.objects.create(role=Role.objects.get(name="Developer"), user=user)
    enrolment = mfa.totp_enrol(user=user)
    # The authenticator app reads the otpauth:// URI from the QR code.
    totp = pyotp.parse_uri(enrolment.provisioning_uri)
    mfa.totp_confirm(user=user, code=totp.at(time.time() - 30))

    provider = ProviderFactory(
        name="loopback-openai", kind="openai", base_url=upstream.url, api_key="sk-console-test"
    )
    DeploymentFactory(provider=provider, name="console-chat", upstream_model="gpt-4o-mini")
    tool = tool_create(
        actor=Actor.system("tests"),
        name="text_stats",
        kind="builtin",
        builtin_name="text_stats",
    )
    from benchmarks.visualizations import seed_usage
    from lumina.memory.api import pinned_create, turn_record
    from lumina.providers.services.budgets import budget_create

    seed_usage(rows=300, user_ids=[user.pk])  # 30 days of this user's requests
    budget_create(
        actor=Actor.system("tests"), scope="user", subject_id=user.pk, name="monthly",
        limit_usd=Decimal("50"),
    )  # fmt: skip

    actor = Actor.for_user(user, mfa_verified=True)
    pinned_create(actor=actor, label="persona", text="Answers briefly, in British English.")
    for text in (
        "I moved to Lisbon in March and I work at Acme Robotics.",
        "My favourite editor is Helix; Ada Lovelace is my hero.",
    ):
        turn_record(actor=actor, text=text, session_id="console-seed")
    return email, totp, str(user.pk), tool.name


def _environment(data_dir: Path, port: int) -> dict[str, str]:
    from django.conf import settings

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LUMINA_", "DATABASE", "REDIS", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url_for_subprocess(),
        LUMINA_DATA_DIR=str(data_dir),
        LUMINA_PORT=str(port),
        LUMINA_EVENT_TRANSPORT="inprocess",
        LUMINA_ADMIN_EMAIL="console.admin@example.com",
        LUMINA_ADMIN_PASSWORD="an admin passphrase 42",
        LUMINA_OUTBOUND_ALLOW="127.0.0.0/8",
        # The keys the seeded secrets (TOTP seed, provider key) were sealed with.
        LUMINA_MASTER_KEYS=settings.LUMINA_MASTER_KEYS,
        SECRET_KEY=settings.SECRET_KEY,
    )
    return env


def _wait_for(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health/live", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                started = log.read_text()[-3000:]
                raise AssertionError(f"the server did not start:\n{started}") from None
            time.sleep(0.25)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    assert BUNDLES.exists(), "the console's bundles are missing: run `make console`"
    script = Script(answer=ANSWER, chunks=12, interval=0.12, model="gpt-4o-mini")
    with (
        UpstreamServer(openai.build_app, base_path=openai.BASE_PATH, script=script) as upstream,
        tempfile.TemporaryDirectory(prefix="lumina-console-") as directory,
        django_db_blocker.unblock(),
    ):
        _flush()  # what a run stopped half-way may have left
        email, totp, user_id, tool_name = _seed(upstream)
        port = _free_port()
        log = Path(directory) / "serve.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--no-migrate", "--host", "127.0.0.1",
                 "--port", str(port)],
                cwd=ROOT, env=_environment(Path(directory) / "var", port), stdout=out, stderr=out,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(base, process, log)
            yield World(base, email, totp, user_id, upstream, tool_name, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _flush()


def _flush() -> None:
    from django.core.management import call_command

    from lumina.providers.selectors.registry import catalogue_clear_local

    call_command("flush", interactive=False, verbosity=0, database="default")
    catalogue_clear_local()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make browser` installs it"
    # Playwright's sync API keeps an event loop running in this thread; the tests' own
    # database use (pytest-django's per-test transaction) is synchronous and alone.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def signed_in_state(world: World, browser) -> dict:
    """The storage state of a session that passed the password and the TOTP code."""
    context = browser.new_context(base_url=world.base)
    page = context.new_page()
    sign_in(page, world)
    state = context.storage_state()
    context.close()
    return state


def sign_in(page, world: World) -> None:
    page.goto("/console/tokens/")
    assert "/console/login/" in page.url
    page.get_by_label("Email").fill(world.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    code = page.get_by_label("Code from your authenticator app (or a backup code)")
    code.wait_for()
    code.fill(world.fresh_code())
    page.get_by_role("button", name="Verify").click()
    try:
        page.wait_for_url("**/console/tokens/", timeout=10_000)
    except Exception:
        errors = page.locator("[data-error-for]").all_inner_texts()
        raise AssertionError(f"not signed in: {errors}") from None


@pytest.fixture
def page(world: World, browser, signed_in_state) -> Iterator:
    """A signed-in page at desktop size; CSP reports collected in ``page.csp_violations``."""
    context = browser.new_context(
        base_url=world.base, storage_state=signed_in_state, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.csp_violations = violations
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page) -> list[dict]:
    """axe-core's critical and serious violations on the page as it is now."""
    page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['critical', 'serious'].includes(v.impact))"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"
    )
    return result


EDITOR_EMAIL = "console.editor@example.com"


@pytest.fixture(scope="module")
def editor(world: World, django_db_blocker) -> str:
    """A second person, a Developer without a second factor (the module's flush removes them)."""
    from lumina.security.models.rbac import Role, RoleAssignment
    from lumina.security.models.users import User

    with django_db_blocker.unblock():
        person = User.objects.create_user(EDITOR_EMAIL, PASSWORD)
        RoleAssignment.objects.create(role=Role.objects.get(name="Developer"), user=person)
    return EDITOR_EMAIL


def sign_in_with_password(page, email: str, path: str) -> None:
    page.goto(path)
    assert "/console/login/" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"**{path}", timeout=10_000)


def csp_watched(page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations
