"""Tools registered through the service, as an administrator would."""

from __future__ import annotations

import uuid
from typing import Any

from lumina.tools.services.registry import tool_create
from lumina.tools.types import ToolDTO
from tests.tools.conftest import SYSTEM

ADD_SOURCE = "def main(a, b):\n    return {'sum': a + b}\n"
ADD_INPUT = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
ADD_OUTPUT = {
    "type": "object",
    "properties": {"sum": {"type": "integer"}},
    "required": ["sum"],
}


def python_tool(name: str | None = None, **fields: Any) -> ToolDTO:
    values = {
        "source": ADD_SOURCE,
        "input_schema": ADD_INPUT,
        "output_schema": ADD_OUTPUT,
        "description": "Add two integers.",
    }
    values.update(fields)
    return tool_create(
        actor=SYSTEM, name=name or f"add_{uuid.uuid4().hex[:8]}", kind="python", **values
    )


def builtin_tool(builtin: str = "time_now", name: str | None = None) -> ToolDTO:
    return tool_create(
        actor=SYSTEM,
        name=name or f"{builtin}_{uuid.uuid4().hex[:6]}",
        kind="builtin",
        builtin_name=builtin,
    )
