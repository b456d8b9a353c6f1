"""Builtin tools: Lumina capabilities offered to models, each through a context's ``api``.

``memory_search`` reaches the memory context through its ``api``, with the caller's own
authorisation (``memory.read``); the others need nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from lumina.memory import api as memory_api
from lumina.security.api import Actor


class BuiltinError(Exception):
    """A builtin refused its input: the message is shown to the caller."""


@dataclasses.dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    function: Callable[[Mapping[str, Any], Actor], Any]


_builtins: dict[str, Builtin] = {}


def register(builtin: Builtin) -> None:
    _builtins[builtin.name] = builtin


def available() -> dict[str, Builtin]:
    return dict(sorted(_builtins.items()))


def get(name: str) -> Builtin | None:
    return _builtins.get(name)


def _time_now(arguments: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    name = arguments.get("timezone") or "UTC"
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BuiltinError(f"Unknown time zone {name!r}.") from None
    now = dt.datetime.now(zone)
    return {"iso": now.isoformat(), "timezone": name, "unix": now.timestamp()}


register(
    Builtin(
        name="time_now",
        description="The current date and time, in a given IANA time zone (default UTC).",
        input_schema={
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "maxLength": 64, "description": "e.g. Europe/Paris"}
            },
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "iso": {"type": "string"},
                "timezone": {"type": "string"},
                "unix": {"type": "number"},
            },
            "required": ["iso", "timezone", "unix"],
        },
        function=_time_now,
    )
)


def _text_stats(arguments: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    text = arguments["text"]
    return {
        "characters": len(text),
        "words": len(text.split()),
        "lines": text.count("\n") + 1 if text else 0,
    }


register(
    Builtin(
        name="text_stats",
        description="Count the characters, words and lines of a text.",
        input_schema={
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 1_000_000}},
            "required": ["text"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "characters": {"type": "integer"},
                "words": {"type": "integer"},
                "lines": {"type": "integer"},
            },
            "required": ["characters", "words", "lines"],
        },
        function=_text_stats,
    )
)


def _search_memory(arguments: Mapping[str, Any], actor: Actor) -> Any:
    found = memory_api.memory_search(
        actor=actor, query=arguments["query"], k=arguments.get("limit", 5)
    )
    return [
        {
            "text": hit.record.text,
            "layer": hit.record.layer,
            "speaker": hit.record.speaker,
            "occurred_at": hit.record.occurred_at.isoformat(),
            "score": round(hit.score, 6),
        }
        for hit in found.hits
    ]


register(
    Builtin(
        name="memory_search",
        description="Search the caller's memories (turns, facts, summaries) for a query.",
        input_schema={
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "layer": {"type": "string"},
                    "speaker": {"type": "string"},
                    "occurred_at": {"type": "string"},
                    "score": {"type": "number"},
                },
                "required": ["text", "layer", "speaker", "occurred_at", "score"],
            },
        },
        function=_search_memory,
    )
)
