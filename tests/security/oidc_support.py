"""A real OpenID Provider (node ``oidc-provider``) on loopback, and a browser for it.

The test plays the browser: Django's test client for Lumina, ``requests`` for the
provider, whose ``server.js`` signs in and consents without a page. ``openid_provider``
(one server per test session) is offered to every security test by ``conftest.py``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
from rest_framework.test import APIClient

from lumina.security.models.oidc import IdentityProvider
from lumina.security.services import oidc as services
from lumina.security.types import Actor

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
SLUG = "test-idp"
CALLBACK_PATH = f"/api/v1/auth/oauth/{SLUG}/callback"
LOGIN_PATH = f"/api/v1/auth/oauth/{SLUG}/login"
ME = "/api/v1/auth/me"


@dataclass(frozen=True)
class OpenIdProvider:
    issuer: str
    port: int
    client_id: str
    client_secret: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def openid_provider() -> Iterator[OpenIdProvider]:
    """``node server.js`` on a free loopback port, stopped at the end of the session."""
    node = shutil.which("node")
    if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"needs Node.js and `npm ci` in {PROVIDER_DIR}")
    port = free_port()
    provider = OpenIdProvider(
        issuer=f"http://127.0.0.1:{port}",
        port=port,
        client_id="lumina-test-client",
        client_secret=secrets.token_urlsafe(32),
    )
    arguments = {
        "--port": str(port),
        "--client-id": provider.client_id,
        "--redirect-uri": f"http://testserver{CALLBACK_PATH}",
    }
    # The secret goes by environment, where other processes' listings do not show it; the
    # output goes to a file, as a pipe nobody reads would block the server once full.
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [node, "server.js", *(part for pair in arguments.items() for part in pair)],
            cwd=PROVIDER_DIR,
            env={**os.environ, "OIDC_CLIENT_SECRET": provider.client_secret},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_discovery(provider, process, output)
            yield provider
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_discovery(provider: OpenIdProvider, process: subprocess.Popen, output) -> None:
    discovery = f"{provider.issuer}/.well-known/openid-configuration"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(discovery, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            output.seek(0)
            pytest.fail(f"the OpenID provider did not start: {output.read().decode()}")
        time.sleep(0.1)


def create_provider(openid_provider: OpenIdProvider, **overrides) -> IdentityProvider:
    settings = {
        "slug": SLUG,
        "display_name": "Test IdP",
        "issuer": openid_provider.issuer,
        "client_id": openid_provider.client_id,
        "client_secret": openid_provider.client_secret,
        "allow_signup": True,
        "link_by_verified_email": True,
        **overrides,
    }
    return services.identity_provider_create(**settings, actor=Actor(user_id=None))


@pytest.fixture
def identity_provider(openid_provider) -> IdentityProvider:
    return create_provider(openid_provider)


def account(sub: str, email: str, *, verified: bool = True, name: str = "Ada Lovelace") -> dict:
    return {"sub": sub, "email": email, "email_verified": verified, "name": name}


def authorize_at_provider(authorization_url: str, account: dict | None) -> str:
    """Follow the provider's redirects as a browser would; return the callback URL."""
    browser = requests.Session()
    if account is not None:
        cookie = base64.urlsafe_b64encode(json.dumps(account).encode()).decode().rstrip("=")
        browser.cookies.set("test_account", cookie)
    url = authorization_url
    for _ in range(10):
        response = browser.get(url, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text
        url = urljoin(url, response.headers["Location"])
        if url.startswith("http://testserver/"):
            return url
    raise AssertionError("the provider never redirected back")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def log_in(
    client: APIClient,
    account: dict | None = None,
    *,
    tamper_authorization: Callable[[str], str] | None = None,
    login_path: str = LOGIN_PATH,
):
    start = client.get(login_path)
    assert start.status_code == 302, start.content
    authorization_url = start["Location"]
    if tamper_authorization is not None:
        authorization_url = tamper_authorization(authorization_url)
    callback = authorize_at_provider(authorization_url, account)
    return client.get(local(callback)), callback


# --- The flow ---------------------------------------------------------------------------
