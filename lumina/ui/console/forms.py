"""Input of the console's own forms: the playground's turn, the dashboard's period, and a
tool's run form generated from its argument schema (which works without JavaScript)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from django import forms

from lumina.providers.api import Strategy

ROLES = ("system", "user", "assistant")
ARGUMENT_KINDS = ("string", "integer", "number", "boolean")
KIND_PROBLEMS = {"integer": "Must be a whole number.", "number": "Must be a number."}


class ChatForm(forms.Form):
    """One playground turn: the conversation so far, the model, and how to pick a provider."""

    model = forms.CharField(max_length=200)
    strategy = forms.ChoiceField(choices=[(s.value, s.value) for s in Strategy], required=False)
    messages = forms.JSONField()
    max_tokens = forms.IntegerField(min_value=1, max_value=32_000, required=False)

    def clean_messages(self) -> list[dict[str, str]]:
        messages = self.cleaned_data["messages"]
        if not isinstance(messages, list) or not messages or len(messages) > 200:
            raise forms.ValidationError("A list of 1 to 200 messages.", code="invalid")
        for message in messages:
            if (
                not isinstance(message, dict)
                or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)
                or set(message) - {"role", "content"}
            ):
                raise forms.ValidationError(
                    'Each message is {"role": "system"|"user"|"assistant", "content": text}.',
                    code="invalid",
                )
        last = messages[-1]
        if last["role"] != "user" or not last["content"].strip():
            raise forms.ValidationError("Write a message first.", code="required")
        return messages


class DashboardFilters(forms.Form):
    """The dashboard's period (a GET form: it works without JavaScript too)."""

    days = forms.TypedChoiceField(
        choices=[(7, "Last 7 days"), (30, "Last 30 days"), (90, "Last 90 days")],
        coerce=int,
        required=False,
    )


@dataclasses.dataclass(frozen=True)
class ArgumentField:
    """One input of a tool's run form, from one property of its argument schema."""

    name: str
    label: str
    description: str
    required: bool
    kind: str  # string, integer, number, boolean, enum or json
    choices: tuple[tuple[str, str], ...] = ()  # (JSON value, label) for an enum
    minimum: Any = None
    maximum: Any = None
    max_length: Any = None
    default: str = ""  # as the input shows it

    @property
    def input_name(self) -> str:
        return f"arguments.{self.name}"


def argument_fields(schema: Mapping[str, Any]) -> list[ArgumentField]:
    """The run form's inputs, one per property of the schema (nested values as JSON)."""
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type") if prop.get("type") in ARGUMENT_KINDS else "json"
        default = prop.get("default")
        choices: tuple[tuple[str, str], ...] = ()
        if isinstance(prop.get("enum"), list):
            kind = "enum"
            choices = tuple((json.dumps(value), str(value)) for value in prop["enum"])
        fields.append(
            ArgumentField(
                name=name, label=str(prop.get("title") or name),
                description=str(prop.get("description") or ""), required=name in required,
                kind=kind, choices=choices, minimum=prop.get("minimum"),
                maximum=prop.get("maximum"), max_length=prop.get("maxLength"),
                default=_shown(kind, default),
            )
        )  # fmt: skip
    return fields


def _shown(kind: str, value: Any) -> str:
    """A value as its input shows it (what ``argument_values`` reads back)."""
    if value is None:
        return ""
    if kind in ("json", "enum"):
        return json.dumps(value)
    if kind == "boolean":
        return "true" if value is True else ""
    return str(value)


def argument_inputs(fields: list[ArgumentField], arguments: Any) -> dict[str, str]:
    """The run form's inputs filled with the arguments of a run, to show what was run."""
    given = arguments if isinstance(arguments, dict) else {}
    return {field.input_name: _shown(field.kind, given.get(field.name)) for field in fields}


def argument_values(
    fields: list[ArgumentField], data: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The arguments a submitted run form gives, and what could not be read (by input name),
    converted as the page's script converts them: an empty input is left out."""
    values: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for field in fields:
        raw = data.get(field.input_name, "")
        if field.kind == "boolean":
            values[field.name] = raw in ("on", "true")
            continue
        if raw == "":
            continue
        try:
            if field.kind in ("enum", "json"):
                values[field.name] = json.loads(raw)
            elif field.kind == "integer":
                values[field.name] = int(raw)
            elif field.kind == "number":
                values[field.name] = float(raw)
            else:
                values[field.name] = raw
        except ValueError:
            problems[field.input_name] = [KIND_PROBLEMS.get(field.kind, "Not valid JSON.")]
    return values, problems
