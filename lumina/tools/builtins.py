"""Builtin tools: Lumina capabilities offered to models, each through a context's ``api``.

The table is pluggable: a builtin is registered here only when what it needs exists.
``memory_search`` appears when ``lumina.memory.api`` offers ``search``; the others need
nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from lumina.security.api import Actor


def _memory_api() -> Any:
    """``lumina.memory.api`` if this build has it. Looked up by name because the memory
    context is optional for tools: a build without its ``api`` still has the other
    builtins (ADR 0020)."""
    try:
        return importlib.import_module("lumina.memory.api")
    except ImportError:
        return None


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


_memory_search = getattr(_memory_api(), "search", None)
if callable(_memory_search):

    def _search_memory(arguments: Mapping[str, Any], actor: Actor) -> Any:
        found = _memory_search(arguments["query"], actor=actor, limit=arguments.get("limit", 5))
        return [
            dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item for item in found
        ]

    register(
        Builtin(
            name="memory_search",
            description="Search the caller's memories for passages about a query.",
            input_schema={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            output_schema=None,
            function=_search_memory,
        )
    )
