"""JSON Schema contracts: checking a schema when a tool is saved, and values against it.

Draft 2020-12 (a schema naming another draft in ``$schema`` is checked against that
one). References resolve only inside the schema itself: the registry given to every
validator retrieves nothing, so a ``$ref`` to a URL never makes the server fetch it.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Mapping
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from lumina.tools.errors import SchemaInvalidError

if TYPE_CHECKING:
    from referencing import Registry, Resource

MAX_SCHEMA_BYTES = 64 * 1024
MAX_ERRORS = 10


def _retrieve(uri: str) -> Resource:
    from referencing.exceptions import NoSuchResource

    # Refuse every remote reference: a schema is a contract, not a URL to fetch.
    raise NoSuchResource(ref=uri)


@cache
def no_retrieval() -> Registry:
    """The registry every validator gets: it resolves nothing outside the schema."""
    from referencing import Registry

    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield ref
        for key, value in schema.items():
            if key not in ("const", "enum", "default", "examples"):
                yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def schema_check(schema: Any, *, field: str, object_root: bool = False) -> dict[str, Any]:
    """``schema`` as a dict, or ``SchemaInvalidError`` naming ``field`` and the problem."""
    from jsonschema import exceptions as jsonschema_errors
    from jsonschema import validators
    from referencing import Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012, specification_with

    if not isinstance(schema, Mapping):
        raise SchemaInvalidError(field, "A JSON Schema here is a JSON object.")
    try:
        encoded = json.dumps(schema)
    except (TypeError, ValueError):
        raise SchemaInvalidError(field, "The schema is not JSON.") from None
    if len(encoded.encode()) > MAX_SCHEMA_BYTES:
        raise SchemaInvalidError(field, f"The schema is larger than {MAX_SCHEMA_BYTES} bytes.")
    schema = json.loads(encoded)
    if object_root and schema.get("type") != "object":
        raise SchemaInvalidError(
            field, 'Arguments are a JSON object: the schema needs "type": "object".'
        )
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema_errors.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise SchemaInvalidError(
            field, f"{exc.message} (at /{where})" if where else exc.message
        ) from None
    dialect = schema.get("$schema") if isinstance(schema.get("$schema"), str) else ""
    root = Resource(contents=schema, specification=specification_with(dialect, default=DRAFT202012))
    resolver = no_retrieval().resolver_with_root(root)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise SchemaInvalidError(
                field, f"The reference {ref!r} does not resolve inside the schema."
            ) from None
    return schema


@lru_cache(maxsize=1024)
def _validator_for(encoded: str) -> Any:
    from jsonschema import validators

    schema = json.loads(encoded)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    return cls(schema, registry=no_retrieval(), format_checker=cls.FORMAT_CHECKER)


# Validators by a key the caller vouches for (a saved tool version's id and which schema):
# no schema text to encode per check, which for a large schema costs more than the check.
_keyed: dict[Hashable, Any] = {}
KEYED_VALIDATORS = 1024


def _validator_keyed(key: Hashable, schema: Mapping[str, Any]) -> Any:
    validator = _keyed.get(key)
    if validator is None:
        validator = _validator_for(json.dumps(schema, sort_keys=True))
        if len(_keyed) >= KEYED_VALIDATORS:
            _keyed.clear()
        _keyed[key] = validator
    return validator


def problems(
    schema: Mapping[str, Any], value: Any, *, prefix: str, key: Hashable | None = None
) -> dict[str, list[str]]:
    """What is wrong with ``value`` under ``schema``, keyed by dotted path under ``prefix``.

    Empty when the value is valid. At most ``MAX_ERRORS`` messages, most relevant first.
    ``key`` names a schema that never changes (an immutable tool version's): its compiled
    validator is then found by the key alone.
    """
    from jsonschema import exceptions as jsonschema_errors

    if key is not None:
        validator = _validator_keyed(key, schema)
    else:
        validator = _validator_for(json.dumps(schema, sort_keys=True))
    found: dict[str, list[str]] = {}
    errors = sorted(validator.iter_errors(value), key=jsonschema_errors.relevance)
    for error in errors[:MAX_ERRORS]:
        path = ".".join(str(part) for part in error.absolute_path)
        key = f"{prefix}.{path}" if path else prefix
        found.setdefault(key, []).append(error.message[:500])
    return found
