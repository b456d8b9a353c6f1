"""The Vega-Lite JSON Schema shipped with the project, and checking specs against it.

The schema is the ``vega-lite-schema.json`` that the pinned ``altair`` package ships
(ADR 0024): read from the installed package's files, never from the network, and without
importing altair itself (which would load its dataframe libraries for nothing). Parsing the
1.9 MB file and building the validator happen once per process, on first use; after that a
check costs the walk over the spec, and a spec checked before costs nothing
(``benchmarks/visualizations.py`` measures each).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumina.kernel.errors import ApplicationError
from lumina.kernel.lazy import LazyImport

if TYPE_CHECKING:
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import ValidationError

# Loaded with the first check, not with the web process (tests/config/test_startup_imports.py).
_jsonschema = LazyImport("jsonschema")
_exceptions = LazyImport("jsonschema.exceptions")

# The Vega-Lite major version altair ships; the console's vega-embed renders the same one.
SCHEMA_MAJOR = "v6"
MAX_MESSAGE = 300
MAX_REMEMBERED = 16 * 1024  # characters of spec text; at most 1,024 remembered (16 MiB)
_lock = threading.Lock()


class SpecError(ApplicationError):
    code = "invalid_spec"
    status = 400


def schema_path() -> Path:
    """Where the installed altair keeps the Vega-Lite schema (its package is not imported)."""
    found = importlib.util.find_spec("altair")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("The altair package (requirements.txt) is not installed.")
    root = Path(next(iter(found.submodule_search_locations)))
    return root / "vegalite" / SCHEMA_MAJOR / "schema" / "vega-lite-schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(schema_path().read_text(encoding="utf-8"))


@functools.cache
def schema_version() -> str:
    """The Vega-Lite version of the schema, e.g. ``"6.4.1"``, as altair's schema module
    states it (read as text: importing it would load altair)."""
    module = schema_path().with_name("__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^SCHEMA_VERSION = "v([0-9.]+)"', module, re.MULTILINE)
    return match.group(1) if match else SCHEMA_MAJOR


def validator() -> Draft7Validator:
    """The compiled validator, built once per process (threads share it)."""
    with _lock:
        return _validator()


@functools.cache
def _validator() -> Draft7Validator:
    return _jsonschema.Draft7Validator(schema())


def json_path(parts: Iterable[Any], root: str = "spec") -> str:
    """``spec.layer[0].encoding.x`` from a validator's ``absolute_path``."""
    text = root
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _choices(error: ValidationError) -> list[str]:
    """The values an ``anyOf`` at this same place would have taken, from its enum branches."""
    found: list[str] = []
    pending = list(error.context or ())
    while pending:
        branch = pending.pop(0)
        if branch.absolute_path != error.absolute_path:
            continue
        if branch.validator == "enum":
            found.extend(str(value) for value in branch.validator_value if value is not None)
        elif branch.validator == "const":
            found.append(str(branch.validator_value))
        pending.extend(branch.context or ())
    return list(dict.fromkeys(found))


def _message(error: ValidationError) -> str:
    message = error.message
    scalar = not isinstance(error.instance, dict | list)
    choices = _choices(error) if scalar and error.validator in ("anyOf", "oneOf") else []
    if choices:
        message = f"{error.instance!r} is not allowed here; choose from {', '.join(choices)}."
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _weight(error: ValidationError) -> int:
    """How far off a branch's error is: an unexpected property per name it lists."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
        return max(1, len(set(error.instance) - known))
    if error.validator in ("anyOf", "oneOf") and error.context:
        return min(sum(map(_weight, found)) for found in _branches(error).values())
    # A constant not matched is a discriminator ("type": "boxplot"): another kind entirely.
    return 2 if error.validator == "const" else 1


def _branches(error: ValidationError) -> dict[Any, list[ValidationError]]:
    branches: dict[Any, list[ValidationError]] = {}
    for branch in error.context or ():
        branches.setdefault(branch.schema_path[0], []).append(branch)
    return branches


def _closest(error: ValidationError) -> ValidationError:
    """Descend into an ``anyOf`` the value matched no branch of, towards the branch it came
    closest to (fewest violations; an unexpected property one each, a wrong constant two):
    "'foo' was unexpected" says more than "not valid under any of the given schemas". An
    ``anyOf`` of plain values stops the descent: its message lists them."""
    while error.context:
        if error.validator in ("anyOf", "oneOf"):
            if not isinstance(error.instance, dict | list) and _choices(error):
                break
            nearest = min(
                _branches(error).values(),
                key=lambda found: (
                    sum(map(_weight, found)),
                    -max(len(e.absolute_path) for e in found),
                ),
            )
            error = max(nearest, key=_exceptions.relevance)
        else:
            error = max(error.context, key=_exceptions.relevance)
    return error


def spec_check(spec: dict[str, Any], *, root: str = "spec") -> None:
    """Raise ``SpecError`` naming the JSON path of the most relevant violation, if any.

    Answers are remembered per spec text (a chart renders the same spec again and again,
    and checking a spec against this schema costs milliseconds)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Large specs (inline values) are checked each time, so the memo stays small.
    found = _verdict(text) if len(text) <= MAX_REMEMBERED else _verdict.__wrapped__(text)
    if found is None:
        return
    parts, message = found
    path = json_path(parts, root)
    raise SpecError(
        f"The spec is not valid Vega-Lite {schema_version()} at {path}: {message}",
        fields={path: [message]},
    )


@functools.lru_cache(maxsize=1024)
def _verdict(text: str) -> tuple[tuple[Any, ...], str] | None:
    """None for a valid spec; else the path of the most relevant violation and its message."""
    errors = list(validator().iter_errors(json.loads(text)))
    if not errors:
        return None
    error = _closest(max(errors, key=_exceptions.relevance))
    return tuple(error.absolute_path), _message(error)
