"""Completions served by ``/v1`` to callers who opted in become conversation turns."""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.memory.services.autorecord import transcript_record
from lumina.providers.events import CompletionTranscript


@subscribe(CompletionTranscript)
def record_completion(event: CompletionTranscript) -> None:
    transcript_record(
        user_id=event.user_id,
        token_id=event.token_id,
        token_scopes=event.token_scopes,
        opt_in=event.opt_in,
        session=event.session,
        model=event.model,
        request_id=event.request_id,
        messages=event.messages,
        reply=event.reply,
        occurred_at=event.occurred_at,
    )
