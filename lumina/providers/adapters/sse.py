"""An incremental Server-Sent Events parser over a response's byte stream.

Follows the WHATWG event-stream rules that providers rely on: ``\\n``, ``\\r\\n`` or ``\\r``
line ends, several ``data:`` lines joined by ``\\n``, ``:`` comments, ``event:`` names, and
events split anywhere across network reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from lumina.providers.adapters.base import UpstreamProtocolError

_BOM = b"\xef\xbb\xbf"


# (event name, data): the name is "message" unless the stream named it; the data lines are
# joined by b"\n". A plain tuple: one is built per streamed chunk, on the hot path.
Event = tuple[str, bytes]


class SSEParser:
    """Feed it bytes as they arrive; it returns the events they complete."""

    __slots__ = ("_buffer", "_data", "_event", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = ""
        self._skip_lf = False  # the last read ended in "\r": a "\n" may follow
        self._started = False

    def feed(self, chunk: bytes) -> list[Event]:
        # Fast path for the hot case: a read holding exactly one "data: …\n\n" event.
        if (
            self._started
            and not self._buffer
            and not self._data
            and not self._event
            and not self._skip_lf
            and chunk[:6] == b"data: "
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk[-1:] == b"\n"
            and b"\r" not in chunk
        ):
            return [("message", chunk[6:-2])]
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not self._started and chunk:
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            lines = buffer.splitlines(keepends=True)
            if lines and not lines[-1].endswith((b"\n", b"\r")):
                self._buffer = lines.pop()
            else:
                self._buffer = b""
                if lines and lines[-1].endswith(b"\r"):
                    self._skip_lf = True
            lines = [line.rstrip(b"\r\n") for line in lines]
        else:
            # The common case: "\n" only, one split.
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
        events: list[Event] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: bytes) -> Event | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = (self._event or "message", b"\n".join(self._data))
            self._data = []
            self._event = ""
            return event
        if line[0] == 0x3A:  # ":" — a comment, e.g. a keep-alive
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id" and "retry" do not matter to a one-shot request, and unknown fields are ignored.
        return None


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Events from an async iterator of byte chunks (e.g. ``response.content.iter_any()``).

    An event not terminated by a blank line when the bytes end is dropped, as the spec says.
    """
    parser = SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event


def load_json(data: bytes, provider: str) -> Any:
    """The JSON in an event's data, or ``UpstreamProtocolError`` naming the provider."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # Not echoed: the data may come from any server the base URL points at.
        raise UpstreamProtocolError(f"{provider} sent an event whose data is not JSON") from None
