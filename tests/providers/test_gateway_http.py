"""The ``/v1`` gateway as an HTTP server: body limits, request ids, model lists, a free loop.

Real requests over TCP to Lumina under uvicorn (``asgi_server``), sent with ``requests``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

import orjson
import pytest
import requests

from lumina.providers.types import Capability, ProviderKind
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.gateway_support import lumina_token
from tests.security.rbac_support import give_role, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


def _developer_token(email: str = "gateway-http@example.com") -> str:
    user = make_user(email)
    give_role(user, "Developer")
    return lumina_token(user)


def _chunks(total: int, size: int = 4096):
    """A body of ``total`` bytes sent chunk by chunk (``requests`` then sends it chunked)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


# -- item: a chunked body over the limit ---------------------------------------------------


def test_a_chunked_body_over_the_limit_on_v1_is_a_413_in_openai_shape(asgi_server, settings):
    settings.LUMINA_MAX_REQUEST_BYTES = 16_384
    token = _developer_token()

    response = requests.post(
        f"{asgi_server.url}/v1/chat/completions",
        data=_chunks(64_000),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert error["type"] == "invalid_request_error"
    assert "16384 bytes" in error["message"]


def test_a_chunked_body_within_the_limit_on_v1_is_read_whole(asgi_server, settings):
    """The guard above must not refuse what fits: same path, same chunking, smaller body."""
    settings.LUMINA_MAX_REQUEST_BYTES = 16_384
    token = _developer_token()
    body = orjson.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})

    response = requests.post(
        f"{asgi_server.url}/v1/chat/completions",
        data=iter([body[:10], body[10:]]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 404, response.text  # parsed, then no such model
    assert response.json()["error"]["param"] == "model"


def test_a_chunked_body_over_the_limit_elsewhere_is_a_413_in_the_common_shape(
    asgi_server, settings
):
    settings.LUMINA_MAX_REQUEST_BYTES = 16_384

    response = requests.post(
        f"{asgi_server.url}/api/v1/auth/login", data=_chunks(64_000), timeout=30
    )

    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"


# -- item: /v1/models lists only to callers who may use the models ------------------------


@pytest.fixture
def listed_model(openai_upstream):
    provider = ProviderFactory(
        name="listed", kind=ProviderKind.OPENAI_COMPATIBLE.value, base_url=openai_upstream.url
    )
    return DeploymentFactory(provider=provider, name="listed-model", capabilities=[Capability.CHAT])


def _models(asgi_server, token: str) -> requests.Response:
    return requests.get(
        f"{asgi_server.url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_models_are_listed_to_a_caller_who_may_use_them(asgi_server, listed_model):
    response = _models(asgi_server, _developer_token())

    assert response.status_code == 200, response.text
    ids = [model["id"] for model in response.json()["data"]]
    assert ids[0] == "lumina/auto"
    assert "listed-model" in ids


@pytest.mark.parametrize("role", ["Viewer", None])
def test_models_are_refused_to_a_user_without_providers_use(asgi_server, listed_model, role):
    user = make_user(f"no-use-{role}@example.com")
    if role:
        give_role(user, role)

    response = _models(asgi_server, lumina_token(user))

    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "permission_error"
    assert "listed-model" not in response.text


def test_models_are_refused_to_a_token_scoped_without_providers_use(asgi_server, listed_model):
    user = make_user("scoped@example.com")
    give_role(user, "Developer")  # the user may; the token given to this client may not
    read_only = lumina_token(user, scopes=("providers.read",))
    full = lumina_token(user, scopes=("providers.use",))

    refused = _models(asgi_server, read_only)
    allowed = _models(asgi_server, full)

    assert refused.status_code == 403, refused.text
    assert "listed-model" not in refused.text
    assert allowed.status_code == 200, allowed.text  # the same user, with the scope
    assert "listed-model" in allowed.text


# -- item: every log line of a /v1 request carries its request id --------------------------


def test_every_log_line_of_a_v1_request_carries_its_request_id(
    asgi_server, openai_upstream, settings, caplog
):
    settings.LUMINA_PROVIDER_RETRIES = 0
    provider = ProviderFactory(
        name="failing", kind=ProviderKind.OPENAI_COMPATIBLE.value, base_url=openai_upstream.url
    )
    DeploymentFactory(provider=provider, name="failing-model", capabilities=[Capability.CHAT])
    openai_upstream.script.fail_next = 5
    openai_upstream.script.fail_status = 503
    caplog.set_level(logging.INFO)

    response = requests.post(
        f"{asgi_server.url}/v1/chat/completions",
        json={"model": "failing-model", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {_developer_token()}", "X-Request-ID": "trace-v1-42"},
        timeout=30,
    )

    assert response.status_code == 502, response.text
    assert response.headers["X-Request-ID"] == "trace-v1-42"

    def logged() -> dict:
        return {
            record.msg["event"]: record.msg
            for record in list(caplog.records)
            if isinstance(record.msg, dict)
            and record.name.startswith("lumina.")
            and record.msg.get("event") in ("provider attempt failed", "request")
        }

    # The access line is written once the response has gone out: wait for it (bounded).
    deadline = time.monotonic() + 10
    while len(lines := logged()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    # Both lines were logged (else the check below would pass on nothing) ...
    assert set(lines) == {"provider attempt failed", "request"}
    # ... the provider's failure, logged deep in the completion service, and the access line.
    assert {line["request_id"] for line in lines.values()} == {"trace-v1-42"}
    assert lines["request"]["path"] == "/v1/chat/completions"
    assert lines["request"]["status"] == 502


# -- item: counting a big prompt leaves the event loop free --------------------------------


def test_the_liveness_probe_answers_while_a_big_prompt_is_being_counted(
    asgi_server, openai_upstream, settings, monkeypatch
):
    from lumina.providers import tokens

    settings.LUMINA_MAX_REQUEST_BYTES = 8 * 1024 * 1024
    provider = ProviderFactory(
        name="big", kind=ProviderKind.OPENAI_COMPATIBLE.value, base_url=openai_upstream.url
    )
    DeploymentFactory(
        provider=provider, name="big-model", capabilities=[Capability.CHAT],
        context_window=10_000_000,
    )  # fmt: skip
    token = _developer_token()
    encode = tokens._encoder()
    counting, release = threading.Event(), threading.Event()
    order: list[str] = []
    encoded: list[int] = []

    def held_encode(text: str) -> list[int]:
        """The real encoder, held on the big prompt until the probe has been answered.

        Were counting on the event loop, the loop would sit here and the probe would be
        answered only after the release (the wait's timeout) - the order below shows it.
        """
        encoded.append(len(text))
        if len(text) >= 10_000:
            order.append("counting")
            counting.set()
            release.wait(15)
            order.append("counted")
        return encode(text)

    monkeypatch.setattr(tokens, "_encode", held_encode)
    # One long "word", BPE's slowest kind of input (under the loopback upstream's 1 MiB).
    prompt = "a" * 1_000_000

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        big = pool.submit(
            requests.post,
            f"{asgi_server.url}/v1/chat/completions",
            json={"model": "big-model", "messages": [{"role": "user", "content": prompt}]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert counting.wait(30), "the big prompt was never counted"
        live = requests.get(f"{asgi_server.url}/health/live", timeout=60)
        order.append("probe answered")
        release.set()
        answer = big.result()

    assert live.status_code == 200
    assert order == ["counting", "probe answered", "counted"]
    assert answer.status_code == 200, answer.text
    # What is encoded is capped; the rest of the prompt is estimated.
    assert max(encoded) <= tokens.EXACT_CHARS
    assert answer.json()["usage"]["prompt_tokens"] > 0
