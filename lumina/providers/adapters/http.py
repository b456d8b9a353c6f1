"""The one pooled aiohttp client per event loop that every adapter sends through.

Its connector is the kernel's outbound guard: it connects only to addresses the operator's
policy allows, checked after DNS resolution (``lumina.kernel.outbound``), and no redirect is
followed, so neither a request nor its API key is led elsewhere.

Also maps transport failures and provider error answers to ``UpstreamError``. What callers
see is Lumina's code and a short message of Lumina's own: never the provider's error body,
an address, the API key or the request's headers. The provider's own words go to the server
log (``upstream_detail``), with the key scrubbed.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from lumina.kernel import outbound
from lumina.providers.adapters.base import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from lumina.providers.types import Endpoint

if TYPE_CHECKING:
    import aiohttp

# aiohttp (~7 MiB with yarl, multidict, frozenlist) is imported where used: it loads with
# the first provider call, not in every process that imports the providers context.

logger = structlog.get_logger(__name__)

USER_AGENT = "lumina"
ERROR_BODY_LIMIT = 64 * 1024  # enough for any real error body; more is not read
LOGGED_DETAIL_LIMIT = 500  # characters of a provider's error text kept in the server log
_PROVIDER_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
KEEPALIVE_SECONDS = 30.0
# After a stream's end marker, how long to wait for the end of the HTTP body so the
# connection can go back to the pool (it normally arrives with the marker).
DRAIN_SECONDS = 0.5

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_draining: set[asyncio.Task[None]] = set()  # see finish(); strong references while they run


def session() -> aiohttp.ClientSession:
    """The running loop's shared session, created on first use.

    aiohttp sessions belong to one event loop, so each loop (the server's, or each
    ``asyncio.run`` of a command) gets its own; call ``close_sessions()`` before the loop ends.
    """
    loop = asyncio.get_running_loop()
    current = _sessions.get(loop)
    if current is None or current.closed:
        current = _open_session(loop)
    return current


def _open_session(loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
    import aiohttp

    _forget_closed_loops()
    connector = outbound.aiohttp_connector(
        # Unlimited here: each provider's bulkhead bounds its concurrency, and a global cap
        # would queue requests for one provider behind another's.
        limit=0,
        ttl_dns_cache=300,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    created = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # providers' cookies must not leak across users
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
        raise_for_status=False,
    )
    _sessions[loop] = created
    return created


async def close_sessions() -> None:
    """Close the running loop's session (shutdown, end of a command or a test)."""
    loop = asyncio.get_running_loop()
    draining = [task for task in list(_draining) if task.get_loop() is loop]
    for task in draining:
        task.cancel()
    await asyncio.gather(*draining, return_exceptions=True)
    current = _sessions.pop(loop, None)
    if current is not None and not current.closed:
        await current.close()
    _forget_closed_loops()


def _forget_closed_loops() -> None:
    # A closed loop's session cannot be closed any more; drop it so it does not pile up.
    # list() snapshots the keys atomically: other threads may run loops of their own.
    for stale in [other for other in list(_sessions) if other.is_closed()]:
        _sessions.pop(stale, None)


@functools.lru_cache(maxsize=64)
def _timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    import aiohttp

    # No total: a stream may last minutes; ``sock_read`` bounds the wait for each piece.
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


def timeout_for(endpoint: Endpoint) -> aiohttp.ClientTimeout:
    return _timeout(endpoint.connect_timeout, endpoint.read_timeout)


def scrub(message: str, endpoint: Endpoint) -> str:
    """``message`` without the endpoint's API key, should a provider echo it back."""
    key = endpoint.api_key
    if key and key in message:
        message = message.replace(key, "***")
    return message


def upstream_detail(endpoint: Endpoint, event: str, detail: object, **fields: Any) -> None:
    """Log what the provider (or the transport) said, for operators: key scrubbed, cut short.

    Callers of Lumina never see this text; it may name internal hosts and ports.
    """
    text = scrub(str(detail), endpoint)[:LOGGED_DETAIL_LIMIT]
    logger.warning(event, provider=endpoint.provider_name, detail=text, **fields)


def clean_provider_code(code: object) -> str | None:
    """The provider's error code or type when it is a short identifier, else None."""
    text = str(code) if code is not None else ""
    return text if _PROVIDER_CODE.match(text) else None


def refused(endpoint: Endpoint, refusal: outbound.DestinationRefused) -> UpstreamError:
    logger.warning(
        "provider address refused by the outbound policy",
        provider=endpoint.provider_name,
        host=refusal.host,
        address=refusal.address,
        reason=refusal.reason,
    )
    return UpstreamError(
        f"{endpoint.provider_name}'s address is not allowed by this server's outbound policy",
        retryable=False,
        code="outbound_refused",
    )


def timed_out(endpoint: Endpoint, waiting_for: str) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"{endpoint.provider_name} did not answer in time ({waiting_for}, "
        f"connect {endpoint.connect_timeout:g}s, read {endpoint.read_timeout:g}s)"
    )


def unreachable(endpoint: Endpoint, exc: BaseException) -> UpstreamError:
    if (refusal := outbound.refusal_in(exc)) is not None:
        return refused(endpoint, refusal)
    # str(exc) names the host and port connected to: the log keeps it, the caller does not.
    upstream_detail(endpoint, "provider unreachable", exc, error=type(exc).__name__)
    return UpstreamError(
        f"could not reach {endpoint.provider_name}",
        retryable=True,
        code="upstream_unreachable",
    )


def stream_cut(endpoint: Endpoint, detail: str | BaseException) -> UpstreamError:
    """A stream that ended early; ``detail`` is Lumina's own words, or the transport's
    exception, of which callers see only the kind."""
    if isinstance(detail, BaseException):
        upstream_detail(endpoint, "provider stream cut", detail, error=type(detail).__name__)
        detail = type(detail).__name__
    return UpstreamError(
        f"{endpoint.provider_name}'s stream ended early: {detail}",
        retryable=False,
        code="upstream_stream_cut",
    )


def stream_error(
    endpoint: Endpoint, detail: object, *, provider_code: object = None, retryable: bool = False
) -> UpstreamError:
    """An error the provider reported in the middle of a stream."""
    code = clean_provider_code(provider_code)
    upstream_detail(endpoint, "provider error mid-stream", detail, provider_code=code)
    return UpstreamError(
        f"{endpoint.provider_name} reported an error mid-stream",
        retryable=retryable,
        code="upstream_overloaded" if code == "overloaded_error" else "upstream_stream_error",
        provider_code=code,
    )


async def post(
    endpoint: Endpoint, url: str, payload: bytes, headers: Mapping[str, str]
) -> aiohttp.ClientResponse:
    """Send ``payload`` and return the response once its headers arrived (any status).

    The caller must ``release()`` the response; ``check()`` turns an error status into
    an ``UpstreamError``.
    """
    import aiohttp

    try:
        return await session().post(
            url,
            data=payload,
            headers=headers,
            timeout=timeout_for(endpoint),
            # A redirect could carry the key (x-api-key, api-key) to another host.
            allow_redirects=False,
        )
    except TimeoutError:
        raise timed_out(endpoint, "waiting for the response") from None
    except aiohttp.ClientError as exc:
        raise unreachable(endpoint, exc) from None


async def check(response: aiohttp.ClientResponse, endpoint: Endpoint) -> None:
    """Raise the provider's error when ``response`` is not a success (redirects included)."""
    if response.status < 300:
        return
    if response.status < 400:
        response.release()
        upstream_detail(
            endpoint,
            "provider answered a redirect",
            response.headers.get("Location", ""),
            status=response.status,
        )
        raise UpstreamError(
            f"{endpoint.provider_name} answered a redirect (HTTP {response.status}), "
            "which Lumina does not follow",
            status=response.status,
            retryable=False,
            code="upstream_redirect",
        )
    import aiohttp

    raw = b""
    try:
        while len(raw) < ERROR_BODY_LIMIT:
            piece = await response.content.read(ERROR_BODY_LIMIT - len(raw))
            if not piece:
                break
            raw += piece
    except (aiohttp.ClientError, TimeoutError):
        pass  # the status alone is enough to act on
    finally:
        response.release()
    raise error_from_answer(endpoint, response.status, response.headers, raw)


async def read_json(response: aiohttp.ClientResponse, endpoint: Endpoint) -> Any:
    """The whole body of a successful response, parsed."""
    import aiohttp

    try:
        raw = await response.read()
    except TimeoutError:
        raise timed_out(endpoint, "reading the response") from None
    except aiohttp.ClientError as exc:
        raise unreachable(endpoint, exc) from None
    finally:
        response.release()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(f"{endpoint.provider_name}'s answer is not JSON") from None


async def finish(response: aiohttp.ClientResponse) -> None:
    """After a stream's end marker: pool the connection once the body ends, else close it.

    The body's end normally arrives with the marker; when it does not, waiting for it
    happens in the background so the caller's stream is not held up.
    """
    if response.content.is_eof():
        response.release()
        return
    task = asyncio.get_running_loop().create_task(_drain(response))
    _draining.add(task)
    task.add_done_callback(_draining.discard)


async def _drain(response: aiohttp.ClientResponse) -> None:
    import aiohttp

    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while await response.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        response.close()
    else:
        response.release()


def error_from_answer(
    endpoint: Endpoint, status: int, headers: Mapping[str, str], raw: bytes
) -> UpstreamError:
    """An ``UpstreamError`` for an HTTP error answer, from its status, headers and body.

    The body may come from any server the base URL points at; only its status and a
    well-formed error code are used, and its text goes to the log.
    """
    message, provider_code = parse_error_body(raw)
    provider_code = clean_provider_code(provider_code)
    code = error_code(status, provider_code)
    upstream_detail(
        endpoint, "provider error answer", message, status=status, provider_code=provider_code
    )
    return UpstreamError(
        f"{endpoint.provider_name} {_ANSWERS.get(code, 'answered with an error')} (HTTP {status})",
        status=status,
        retryable=status in (408, 409, 429) or status >= 500,
        retry_after=parse_retry_after(headers),
        code=code,
        provider_code=provider_code,
    )


_ANSWERS = {
    "upstream_overloaded": "is overloaded",
    "upstream_rate_limited": "is limiting the rate of requests",
    "upstream_auth_failed": "refused the credentials",
    "upstream_not_found": "does not know this model or endpoint",
    "upstream_bad_request": "refused the request as invalid",
    "upstream_server_error": "failed",
}


def parse_error_body(raw: bytes) -> tuple[str, str | None]:
    """The message and the provider's error code from an error body of any provider.

    OpenAI: ``{"error": {"message", "type", "code"}}``; Anthropic: ``{"type": "error",
    "error": {"type", "message"}}``; Ollama: ``{"error": "..."}``; else the raw text.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw[:500].decode("utf-8", "replace").strip()
        return text or "no error message", None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            code = error.get("code") or error.get("type")
            return (
                str(message) if message else "no error message",
                str(code) if code else None,
            )
        if isinstance(error, str) and error:
            return error, None
        for key in ("message", "detail"):  # other OpenAI-compatible servers
            if isinstance(data.get(key), str) and data[key]:
                return data[key], None
    return raw[:500].decode("utf-8", "replace"), None


def error_code(status: int, provider_code: str | None = None) -> str:
    if status == 529 or provider_code == "overloaded_error":
        return "upstream_overloaded"
    if status == 429:
        return "upstream_rate_limited"
    if status in (401, 403):
        return "upstream_auth_failed"
    if status == 404:
        return "upstream_not_found"
    if status in (400, 413, 422):
        return "upstream_bad_request"
    if status >= 500:
        return "upstream_server_error"
    return "upstream_error"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
