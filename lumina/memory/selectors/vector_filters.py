"""The metadata filter language of vector collections, compiled to parameterised SQL.

A filter is a JSON object. Keys are metadata fields (``"a.b"`` reaches into nested
objects) or the combinators ``$and`` / ``$or`` (lists) and ``$not`` (an object). A field
maps to a value (equality) or to an object of operators:

``$eq``, ``$ne``, ``$in``, ``$nin`` (lists), ``$gt``, ``$gte``, ``$lt``, ``$lte`` (numbers
or strings, such as ISO dates), ``$contains`` (an array holding the value, or a string
holding the substring) and ``$exists`` (true or false).

Equality and ``$in`` become ``metadata @> …`` so the GIN index answers them; ranges go
through ``jsonb_path_exists`` with variables, which never fails on a value of another
type (it is simply not a match). Field names must be keys some record of the collection
has had: a filter on any other field is refused, naming it, rather than matching nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lumina.memory.errors import InvalidInputError

MAX_DEPTH = 8
MAX_CONDITIONS = 100
RANGE_OPERATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = {"$eq", "$ne", "$in", "$nin", "$contains", "$exists", *RANGE_OPERATORS}
MAX_FIELD_LENGTH = 200


@dataclass
class CompiledFilter:
    sql: str
    params: list[Any] = field(default_factory=list)


@dataclass
class _State:
    known_fields: frozenset[str]
    column: str
    conditions: int = 0


def compile_filter(
    spec: Any, *, known_fields: Iterable[str], column: str = "metadata", where: str = "filter"
) -> CompiledFilter:
    """SQL (``%s`` parameters) true for records matching ``spec``; ``InvalidInputError``
    naming ``filter…`` for anything malformed or a field no record has."""
    if spec is None or spec == {}:
        return CompiledFilter("TRUE")
    state = _State(frozenset(known_fields), column)
    params: list[Any] = []
    sql = _node(spec, where, 0, state, params)
    return CompiledFilter(sql, params)


def _node(spec: Any, where: str, depth: int, state: _State, params: list[Any]) -> str:
    if depth > MAX_DEPTH:
        raise InvalidInputError(where, f"Filters nest at most {MAX_DEPTH} levels.")
    if not isinstance(spec, dict) or not spec:
        raise InvalidInputError(where, "A filter is a non-empty JSON object.")
    parts = []
    for key, value in spec.items():
        here = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidInputError(here, f"{key} takes a non-empty list of filters.")
            joined = f" {key[1:].upper()} ".join(
                _node(item, f"{here}[{index}]", depth + 1, state, params)
                for index, item in enumerate(value)
            )
            parts.append(f"({joined})")
        elif key == "$not":
            parts.append(f"(NOT {_node(value, here, depth + 1, state, params)})")
        elif key.startswith("$"):
            raise InvalidInputError(
                here, f"Unknown combinator '{key}': use $and, $or, $not or a field name."
            )
        else:
            parts.append(_field(key, value, here, state, params))
    return "(" + " AND ".join(parts) + ")"


def _path(name: str, where: str, state: _State) -> list[str]:
    if "\x00" in name:
        raise InvalidInputError(where, "A field name may not contain NUL characters.")
    path = name.split(".")
    if len(name) > MAX_FIELD_LENGTH or not all(path):
        raise InvalidInputError(where, f"'{name[:MAX_FIELD_LENGTH]}' is not a field name.")
    if path[0] not in state.known_fields:
        raise InvalidInputError(
            where, f"No record of this collection has the metadata field '{path[0]}'."
        )
    return path


def _nested(path: list[str], value: Any) -> str:
    for key in reversed(path):
        value = {key: value}
    return json.dumps(value)


def _jsonpath(path: list[str]) -> str:
    return "$" + "".join("." + json.dumps(key) for key in path)


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        raise InvalidInputError(where, "Compare with a value, not an object.")
    if isinstance(value, float) and value != value:
        raise InvalidInputError(where, "NaN is not a value to compare with.")
    if _has_nul(value):
        raise InvalidInputError(where, "Values may not contain NUL characters.")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    return False


def _field(name: str, value: Any, where: str, state: _State, params: list[Any]) -> str:
    path = _path(name, where, state)
    column = state.column
    operators = value if isinstance(value, dict) else {"$eq": value}
    if not operators:
        raise InvalidInputError(where, "Give a value or an object of operators.")
    parts = []
    for operator, operand in operators.items():
        here = f"{where}.{operator}"
        state.conditions += 1
        if state.conditions > MAX_CONDITIONS:
            raise InvalidInputError(here, f"At most {MAX_CONDITIONS} conditions per filter.")
        if operator not in OPERATORS:
            raise InvalidInputError(
                here, f"Unknown operator '{operator}': use one of {', '.join(sorted(OPERATORS))}."
            )
        if operator in ("$eq", "$ne"):
            params.append(_nested(path, _scalar(operand, here)))
            sql = f"{column} @> %s::jsonb"
            parts.append(sql if operator == "$eq" else f"NOT ({sql})")
        elif operator in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand or len(operand) > MAX_CONDITIONS:
                raise InvalidInputError(
                    here, f"{operator} takes a list of 1 to {MAX_CONDITIONS} values."
                )
            ors = []
            for item in operand:
                params.append(_nested(path, _scalar(item, here)))
                ors.append(f"{column} @> %s::jsonb")
            sql = "(" + " OR ".join(ors) + ")"
            parts.append(sql if operator == "$in" else f"NOT {sql}")
        elif operator in RANGE_OPERATORS:
            if isinstance(operand, bool) or not isinstance(operand, int | float | str):
                raise InvalidInputError(here, f"{operator} compares with a number or a string.")
            _scalar(operand, here)
            if (isinstance(operand, float) and operand != operand) or operand in (
                float("inf"),
                float("-inf"),
            ):
                raise InvalidInputError(here, f"{operator} needs a finite number.")
            params.append(f"{_jsonpath(path)} ? (@ {RANGE_OPERATORS[operator]} $v)")
            params.append(json.dumps({"v": operand}))
            parts.append(f"jsonb_path_exists({column}, %s::jsonpath, %s::jsonb)")
        elif operator == "$contains":
            operand = _scalar(operand, here)
            params.append(_nested(path, [operand]))
            sql = f"({column} @> %s::jsonb"
            if isinstance(operand, str):
                params.extend(["{" + ",".join(_pg_array_items(path)) + "}"] * 2 + [operand])
                sql += (
                    f" OR (jsonb_typeof({column} #> %s::text[]) = 'string'"
                    f" AND strpos({column} #>> %s::text[], %s) > 0)"
                )
            parts.append(sql + ")")
        else:  # $exists
            if not isinstance(operand, bool):
                raise InvalidInputError(here, "$exists takes true or false.")
            params.append("{" + ",".join(_pg_array_items(path)) + "}")
            parts.append(f"({column} #> %s::text[]) IS {'NOT ' if operand else ''}NULL")
    return "(" + " AND ".join(parts) + ")"


def _pg_array_items(path: list[str]) -> list[str]:
    return ['"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"' for key in path]
