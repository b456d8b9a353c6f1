"""Chat completions and embeddings: select, admit, call with retries and fallback, account.

This is the hot path. With warm caches it touches no database: the registry, prices,
tokens and permissions are in-process snapshots, and the usage record goes to the
ledger's background writer once the response is complete. A stream is an async
generator from the provider's socket to the client's: fallback is possible until the
first chunk is in hand; after that a failure ends the stream with an error event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import structlog

from lumina.kernel.concurrency import run_sync
from lumina.kernel.errors import ApplicationError, PermissionDeniedError
from lumina.providers import metrics
from lumina.providers.adapters import adapter_for
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.events.completion import CompletionGenerated, CompletionTranscript
from lumina.providers.resilience import (
    attempt_calls,
    attempt_stream,
    circuit_states,
    latency_stats,
)
from lumina.providers.selectors.registry import catalogue_async, endpoint_for_async
from lumina.providers.selectors.selection import select
from lumina.providers.services.budgets import (
    Admission,
    budget_admit,
    budget_remaining,
    budget_settle,
)
from lumina.providers.services.requests import (
    InvalidRequestError,
    chat_request_check,
    embeddings_request_check,
    max_output_tokens,
)
from lumina.providers.services.usage import usage_event_submit, usage_submit
from lumina.providers.tokens import (
    count_message_tokens_async,
    count_text_tokens_async,
    count_texts_tokens_async,
)
from lumina.providers.types import (
    Candidate,
    Capability,
    DeploymentDTO,
    Needs,
    Strategy,
    Usage,
    UsageEntry,
    UsageStatus,
)
from lumina.security.api import Actor, authorize

logger = structlog.get_logger(__name__)

# Output tokens assumed for pricing a request that sets no max_tokens, before it runs.
DEFAULT_OUTPUT_ESTIMATE = 256
# A token carrying this scope has its completions published for recording (memory's).
RECORD_SCOPE = "memory.record"
MAX_SESSION_CHARS = 200


class ProviderFailedError(ApplicationError):
    """Every candidate failed; the message names the last provider error."""

    code = "upstream_error"
    status = 502

    def __init__(self, message: str, *, upstream: UpstreamError | None = None) -> None:
        super().__init__(message, code=upstream.code if upstream else None)
        if upstream is not None and upstream.status == 429:
            self.status = 429
        elif upstream is not None and upstream.code == "upstream_timeout":
            self.status = 504
        self.retry_after = upstream.retry_after if upstream else None


class StreamInterrupted(Exception):
    """The stream broke after its first chunk was sent; the client gets an error event."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclasses.dataclass
class AttemptRecord:
    deployment: DeploymentDTO
    number: int
    outcome: str
    error_code: str
    duration_ms: float


async def authorize_use(actor: Actor) -> None:
    decision = await run_sync(authorize, actor, "providers.use")
    if not decision.allowed:
        raise PermissionDeniedError(f"You may not call models: {decision.reason}.")


class Call:
    """One request's journey, from selection to its usage record."""

    def __init__(
        self,
        *,
        actor: Actor,
        body: dict[str, Any],
        request_id: str,
        operation: str,
        strategy: Strategy | None = None,
    ) -> None:
        self.actor = actor
        self.body = body
        self.request_id = request_id
        self.operation = operation
        self.strategy = strategy
        self.started = time.perf_counter()
        self.occurred_at = dt.datetime.now(dt.UTC)
        self.upstream_seconds = 0.0
        self.attempts: list[AttemptRecord] = []
        self.candidates: list[Candidate] = []
        self.deployment: DeploymentDTO | None = None
        self.usage: Usage | None = None
        self.status = UsageStatus.OK
        self.error_code = ""
        self.ttft_ms: float | None = None
        self.admission: Admission | None = None
        self.estimated_input = 0
        self.finished = False
        self.finish_reason: str | None = None
        # Opted in to recording: (session, "token" | "header"); the reply's text.
        self.record: tuple[str, str] | None = None
        self.reply = ""

    # -- before any provider is called ---------------------------------------------

    async def prepare(self, needs: Needs) -> None:
        """Select candidates and reserve budget; a refusal is recorded as usage too."""
        try:
            remaining = await budget_remaining(
                user_id=self.actor.user_id, token_id=self.actor.token_id
            )
            if remaining is not None:
                # Candidates this request could not pay for are skipped, cheaper ones kept.
                needs = dataclasses.replace(needs, budget_remaining=remaining)
            snapshot = await catalogue_async()
            states = await circuit_states(snapshot.resolve(self.body["model"]))
            selection = select(
                catalogue=snapshot,
                model=self.body["model"],
                needs=needs,
                breaker_states=states,
                stats=latency_stats(),
            )
            self.candidates = list(selection.candidates)
            best = self.candidates[0].deployment
            estimated_cost = best.prices.cost(
                Usage(
                    input_tokens=needs.estimated_input_tokens,
                    output_tokens=needs.estimated_output_tokens,
                )
            )
            self.admission = await budget_admit(
                user_id=self.actor.user_id,
                token_id=self.actor.token_id,
                estimated_tokens=needs.estimated_input_tokens + needs.estimated_output_tokens,
                estimated_cost=estimated_cost,
            )
        except ApplicationError as error:
            self.status = UsageStatus.REJECTED
            self.error_code = error.code
            await self.finish()
            raise

    async def estimated_usage(self, output_text: str) -> Usage:
        """What Lumina counts itself when the provider reported no usage."""
        return Usage(
            input_tokens=self.estimated_input,
            output_tokens=await count_text_tokens_async(output_text),
            estimated=True,
        )

    @property
    def overhead_seconds(self) -> float:
        return max(0.0, time.perf_counter() - self.started - self.upstream_seconds)

    # -- calling providers ---------------------------------------------------------

    def _note_attempt(
        self, deployment: DeploymentDTO, number: int, error: UpstreamError | None, seconds: float
    ) -> None:
        self.upstream_seconds += seconds
        outcome = "ok" if error is None else ("retry" if error.retryable else "error")
        self.attempts.append(
            AttemptRecord(
                deployment=deployment,
                number=number,
                outcome=outcome,
                error_code=error.code if error else "",
                duration_ms=seconds * 1000,
            )
        )
        metrics.labelled(metrics.ATTEMPTS, deployment.provider.name, deployment.name, outcome).inc()

    async def _each_candidate(self, call, *, stream: bool = False):
        """Try ``call(adapter, endpoint)`` on each candidate in turn, with retries.

        With ``stream``, ``call`` returns the provider's stream and the result is
        ``(rest, first)`` once its first chunk is in hand.
        """
        last: UpstreamError | None = None
        for candidate in self.candidates:
            deployment = candidate.deployment
            endpoint = await endpoint_for_async(deployment)
            adapter = adapter_for(deployment.provider.kind)
            try:
                attempt = attempt_stream if stream else attempt_calls
                result = await attempt(
                    deployment,
                    lambda adapter=adapter, endpoint=endpoint: call(adapter, endpoint),
                    on_attempt=self._note_attempt,
                )
            except UpstreamError as error:
                last = error
                logger.warning(
                    "provider attempt failed",
                    provider=deployment.provider.name,
                    model=deployment.name,
                    code=error.code,
                    status=error.status,
                )
                if (
                    error.status is not None
                    and 400 <= error.status < 500
                    and error.status
                    not in (
                        401,
                        403,
                        404,
                        408,
                        409,
                        429,
                    )
                ):
                    break  # the request itself is wrong: another provider would refuse it too
                continue
            self.deployment = deployment
            return result
        self.status = UsageStatus.ERROR
        self.error_code = last.code if last else "no_available_provider"
        if last is not None and _refused_request(last):
            raise InvalidRequestError(
                f"The provider refused the request: {last.message}",
                param="messages",
                code=last.code,
            )
        raise ProviderFailedError(
            f"No provider could serve the request: {last.message if last else 'none available'}",
            upstream=last,
        )

    def _attempt_log(self) -> tuple[dict[str, Any], ...]:
        if len(self.attempts) < 2 and all(a.outcome == "ok" for a in self.attempts):
            return ()  # the row itself says which provider served, at the first try
        return tuple(
            {
                "provider": a.deployment.provider.name,
                "model": a.deployment.name,
                "attempt": a.number,
                "outcome": a.outcome,
                "error_code": a.error_code,
                "duration_ms": round(a.duration_ms, 1),
            }
            for a in self.attempts
        )

    async def finish(self) -> UsageEntry:
        """Record usage, settle the budget and count metrics; once per call."""
        self.finished = True
        deployment = self.deployment or (self.attempts[-1].deployment if self.attempts else None)
        usage = self.usage or Usage()
        cost = deployment.prices.cost(usage) if deployment else Decimal(0)
        latency = time.perf_counter() - self.started
        entry = UsageEntry(
            id=uuid.uuid4(),
            occurred_at=self.occurred_at,
            request_id=self.request_id,
            operation=self.operation,
            status=self.status,
            stream=bool(self.body.get("stream")),
            requested_model=str(self.body.get("model", ""))[:200],
            usage=usage,
            cost=cost,
            user_id=self.actor.user_id,
            token_id=self.actor.token_id,
            provider_id=deployment.provider.id if deployment else None,
            provider_name=deployment.provider.name if deployment else "",
            deployment_id=deployment.id if deployment else None,
            model=deployment.name if deployment else "",
            attempts=len(self.attempts),
            latency_ms=latency * 1000,
            ttft_ms=self.ttft_ms,
            error_code=self.error_code,
            attempt_log=self._attempt_log(),
        )
        usage_submit(entry)
        if self.operation == "chat" and self.status is UsageStatus.OK and deployment is not None:
            usage_event_submit(
                CompletionGenerated(
                    request_id=self.request_id,
                    user_id=self.actor.user_id,
                    token_id=self.actor.token_id,
                    provider_id=deployment.provider.id,
                    deployment_id=deployment.id,
                    model=deployment.name,
                    stream=entry.stream,
                    finish_reason=self.finish_reason,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost=cost,
                    latency_ms=round(entry.latency_ms, 2),
                )
            )
            if self.record is not None:
                usage_event_submit(self._transcript(deployment.name))
        if self.admission is not None:
            await budget_settle(self.admission, tokens=usage.total_tokens, cost=cost)
        provider = deployment.provider.name if deployment else ""
        model = deployment.name if deployment else ""
        metrics.labelled(metrics.REQUESTS, self.operation, provider, model, self.status.value).inc()
        metrics.labelled(metrics.LATENCY, self.operation, provider, model).observe(latency)
        if deployment is not None:
            for kind in ("input", "cached_input", "cache_write", "output", "reasoning"):
                count = getattr(usage, f"{kind}_tokens")
                if count:
                    metrics.labelled(metrics.TOKENS, provider, model, kind).inc(count)
            if cost:
                metrics.labelled(metrics.COST, provider, model).inc(float(cost))
        return entry

    def _transcript(self, model: str) -> CompletionTranscript:
        session, opt_in = self.record
        scopes = self.actor.scopes
        messages = tuple(
            {
                "role": str(message.get("role")),
                "name": message.get("name") if isinstance(message.get("name"), str) else "",
                "content": _text_of(message.get("content")),
            }
            for message in self.body["messages"]
        )
        return CompletionTranscript(
            id=uuid.uuid4(),
            occurred_at=self.occurred_at,
            request_id=self.request_id,
            user_id=self.actor.user_id,
            token_id=self.actor.token_id,
            token_scopes=tuple(sorted(scopes)) if scopes is not None else None,
            opt_in=opt_in,
            session=session,
            model=model,
            messages=messages,
            reply=self.reply,
        )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def recording_opt_in(actor: Actor, session: str | None) -> tuple[str, str] | None:
    """(session, how) when this request's completion is to be published for recording.

    ``session`` is the ``X-Lumina-Memory-Session`` header's value; a token carrying the
    ``memory.record`` scope opts in without it, into a session named after the token.
    """
    if session is not None:
        if not session or len(session) > MAX_SESSION_CHARS or not session.isprintable():
            raise InvalidRequestError(
                f"X-Lumina-Memory-Session is 1 to {MAX_SESSION_CHARS} printable characters.",
                param="X-Lumina-Memory-Session",
                code="invalid_memory_session",
            )
        return session, "header"
    if actor.scopes is not None and RECORD_SCOPE in actor.scopes and actor.token_id:
        return f"token-{actor.token_id}", "token"
    return None


def _refused_request(error: UpstreamError) -> bool:
    """A 4xx that blames the request, not the provider's set-up (key, model, rate limit)."""
    return error.status is not None and 400 <= error.status < 500 and error.status not in _SETUP


_SETUP = frozenset({401, 403, 404, 408, 409, 429})


# -- chat -------------------------------------------------------------------------------


async def _chat_needs(body: dict[str, Any], strategy: Strategy | None) -> Needs:
    capabilities = {Capability.CHAT}
    if body.get("stream"):
        capabilities.add(Capability.STREAMING)
    if body.get("tools"):
        capabilities.add(Capability.TOOLS)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        capabilities.add(Capability.JSON_MODE)
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list) and any(p.get("type") == "image_url" for p in content):
            capabilities.add(Capability.VISION)
            break
    input_tokens = await count_message_tokens_async(body["messages"])
    output = max_output_tokens(body)
    return Needs(
        capabilities=frozenset(capabilities),
        min_context_window=input_tokens + (output or 0),
        strategy=strategy or Strategy.BALANCED,
        estimated_input_tokens=input_tokens,
        estimated_output_tokens=output or DEFAULT_OUTPUT_ESTIMATE,
    )


async def chat_prepare(
    *,
    actor: Actor,
    body: Any,
    request_id: str,
    strategy: Strategy | None = None,
    memory_session: str | None = None,
) -> Call:
    """Check, authorise, select and admit a chat request; raises before any provider call.

    ``memory_session``: the ``X-Lumina-Memory-Session`` header, if sent (see
    ``recording_opt_in``)."""
    body = chat_request_check(body)
    record = recording_opt_in(actor, memory_session)
    await authorize_use(actor)
    call = Call(actor=actor, body=body, request_id=request_id, operation="chat", strategy=strategy)
    call.record = record
    needs = await _chat_needs(body, strategy)
    call.estimated_input = needs.estimated_input_tokens
    await call.prepare(needs)
    return call


async def chat_complete(call: Call) -> dict[str, Any]:
    """A whole completion in OpenAI's shape; usage is recorded whatever happens."""
    metrics.labelled(metrics.IN_FLIGHT, "chat").inc()
    try:
        completion = await call._each_candidate(
            lambda adapter, endpoint: adapter.chat(endpoint, call.body)
        )
        call.usage = completion.usage or await _estimate_completion(call, completion.body)
        body = completion.body
        choices = body.get("choices") or [{}]
        call.finish_reason = choices[0].get("finish_reason")
        call.reply = _text_of((choices[0].get("message") or {}).get("content"))
        if call.usage.estimated or "usage" not in body:
            body = {**body, "usage": call.usage.to_openai()}
        return body
    except ApplicationError as error:
        call.error_code = call.error_code or error.code
        call.status = UsageStatus.ERROR
        raise
    finally:
        metrics.labelled(metrics.IN_FLIGHT, "chat").dec()
        await call.finish()


async def _estimate_completion(call: Call, body: dict[str, Any]) -> Usage:
    text = ""
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        text += message.get("content") or ""
        for tool_call in message.get("tool_calls") or ():
            function = tool_call.get("function") or {}
            text += (function.get("name") or "") + (function.get("arguments") or "")
    return await call.estimated_usage(text)


async def chat_stream(call: Call) -> AsyncIterator[dict[str, Any]]:
    """Chunks for the client. Opening falls back across candidates; after the first chunk
    a failure raises ``StreamInterrupted``. Usage is recorded when the generator ends,
    however it ends (completed, broken, or closed because the client left)."""
    wants_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    metrics.labelled(metrics.IN_FLIGHT, "chat").inc()
    text_parts: list[str] = []
    upstream = None
    try:
        try:
            upstream, first = await call._each_candidate(
                lambda adapter, endpoint: adapter.stream(endpoint, call.body), stream=True
            )
        except ApplicationError as error:
            call.error_code = call.error_code or error.code
            call.status = UsageStatus.ERROR
            raise
        call.ttft_ms = (time.perf_counter() - call.started) * 1000
        if call.deployment is not None:
            deployment = call.deployment
            ttft = metrics.labelled(metrics.TTFT, deployment.provider.name, deployment.name)
            ttft.observe(call.ttft_ms / 1000)
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            usage = chunk.get("usage")
            if usage:
                call.usage = Usage.from_openai(usage)
            _collect_text(call, chunk, text_parts)
            if chunk.get("choices") or wants_usage:
                yield chunk
            try:
                chunk = await anext(upstream, None)
            except UpstreamError as error:
                call.status = UsageStatus.CUT
                call.error_code = error.code
                raise StreamInterrupted(error) from error
        if call.usage is None:
            call.usage = await call.estimated_usage("".join(text_parts))
            if wants_usage:
                yield {
                    "id": first.get("id"),
                    "object": "chat.completion.chunk",
                    "created": first.get("created"),
                    "model": first.get("model"),
                    "choices": [],
                    "usage": call.usage.to_openai(),
                }
    except GeneratorExit:
        call.status = UsageStatus.CANCELLED
        call.error_code = "client_disconnected"
        raise
    finally:
        if upstream is not None:
            await upstream.aclose()
        if call.usage is None and call.status is not UsageStatus.REJECTED:
            call.usage = await call.estimated_usage("".join(text_parts))
        call.reply = "".join(text_parts)
        metrics.labelled(metrics.IN_FLIGHT, "chat").dec()
        await call.finish()


def _collect_text(call: Call, chunk: dict[str, Any], parts: list[str]) -> None:
    for choice in chunk.get("choices") or ():
        if choice.get("finish_reason"):
            call.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            parts.append(content)
        for tool_call in delta.get("tool_calls") or ():
            function = tool_call.get("function") or {}
            parts.append((function.get("name") or "") + (function.get("arguments") or ""))


# -- models -----------------------------------------------------------------------------


async def models_list(*, actor: Actor) -> list[dict[str, Any]]:
    """The models ``actor`` may call, in OpenAI's ``/v1/models`` shape, ``lumina/auto`` first.

    Refused (403) without ``providers.use``, as chat and embeddings are: listing what one
    may not call tells a caller nothing it can use and everything an attacker wants.
    """
    await authorize_use(actor)
    snapshot = await catalogue_async()
    seen: dict[str, dict[str, Any]] = {}
    for deployment in snapshot.deployments:
        if deployment.usable and deployment.name not in seen:
            seen[deployment.name] = {
                "id": deployment.name,
                "object": "model",
                "created": 0,
                "owned_by": deployment.provider.name,
            }
    return [
        {"id": "lumina/auto", "object": "model", "created": 0, "owned_by": "lumina"},
        *seen.values(),
    ]


# -- embeddings -------------------------------------------------------------------------


async def embeddings_prepare(*, actor: Actor, body: Any, request_id: str) -> Call:
    body = embeddings_request_check(body)
    await authorize_use(actor)
    call = Call(actor=actor, body=body, request_id=request_id, operation="embeddings")
    texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
    tokens = await count_texts_tokens_async(texts)
    call.estimated_input = tokens
    longest = max(texts, key=len, default="")
    needs = Needs(
        capabilities=frozenset({Capability.EMBEDDINGS}),
        min_context_window=await count_text_tokens_async(longest),
        context_per_input=True,
        estimated_input_tokens=tokens,
        strategy=Strategy.BALANCED,
    )
    await call.prepare(needs)
    return call


async def embeddings_create(call: Call) -> dict[str, Any]:
    metrics.labelled(metrics.IN_FLIGHT, "embeddings").inc()
    try:
        result = await call._each_candidate(
            lambda adapter, endpoint: adapter.embed(endpoint, call.body)
        )
        call.usage = result.usage or Usage(input_tokens=call.estimated_input, estimated=True)
        return result.body
    except ApplicationError as error:
        call.error_code = call.error_code or error.code
        call.status = UsageStatus.ERROR
        raise
    finally:
        metrics.labelled(metrics.IN_FLIGHT, "embeddings").dec()
        await call.finish()
