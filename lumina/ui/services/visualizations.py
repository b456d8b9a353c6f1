"""Visualization use-cases: check a spec, save, change and delete charts, render them.

A spec is checked in two steps. First its data bindings: every ``data`` object whose
``name`` starts with ``lumina:`` must name a known source with valid parameters, and no
``data`` may have a ``url`` (charts read Lumina's sources or inline values, never a place
the browser would fetch). Then the spec, with each binding reduced to ``{"name": key}``,
against the Vega-Lite JSON Schema. Rendering swaps bindings for named ``datasets`` filled
with the rows the viewer may see, so the answer is a spec vega-embed draws as it is.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from django.db import transaction

from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor, require
from lumina.ui.models import Visualization
from lumina.ui.selectors.visualizations import EDIT, visualization_get
from lumina.ui.services.visualization_sources import (
    PREFIX,
    SOURCES,
    TIME_PARAMS,
    Source,
    binding_check,
    source_rows,
)
from lumina.ui.vegalite import SpecError, spec_check

MAX_SPEC_BYTES = 256 * 1024
MAX_BINDINGS = 8
MAX_DEPTH = 64  # nesting of objects and arrays; real specs stay under 15


@dataclasses.dataclass(frozen=True)
class Binding:
    key: str  # the dataset's name in the rendered spec
    path: str  # where the binding sits, e.g. "spec.layer[1].data"
    source: Source
    raw_params: dict[str, Any]
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PreparedSpec:
    stored: dict[str, Any]  # as the owner wrote it
    bound: dict[str, Any]  # bindings replaced by {"name": key}
    bindings: tuple[Binding, ...]


@dataclasses.dataclass(frozen=True)
class Rendered:
    spec: dict[str, Any]
    rows: dict[str, int]  # dataset -> rows
    truncated: tuple[str, ...]  # datasets cut at the row limit


def _walk(value: Any, path: str, bindings: list[Binding], overrides: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_walk(item, f"{path}[{i}]", bindings, overrides) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        here = f"{path}.{key}"
        if key == "data" and isinstance(item, dict):
            out[key] = _data(item, here, bindings, overrides)
        elif key == "datasets" and path == "spec":
            out[key] = item  # inline values, checked by the schema
        else:
            out[key] = _walk(item, here, bindings, overrides)
    return out


def _data(data: dict, path: str, bindings: list[Binding], overrides: dict[str, Any]) -> Any:
    if "url" in data:
        raise SpecError(
            f"{path}.url: charts read Lumina data sources or inline values, not URLs.",
            fields={f"{path}.url": ["Use a Lumina data source (lumina:…) or inline values."]},
        )
    name = data.get("name")
    if not (isinstance(name, str) and name.startswith(PREFIX)):
        return data
    if len(bindings) >= MAX_BINDINGS:
        raise SpecError(
            f"{path}: at most {MAX_BINDINGS} data sources in one chart.",
            fields={path: [f"At most {MAX_BINDINGS} data sources in one chart."]},
        )
    params = data.get("params", {})
    source = SOURCES.get(name)
    if overrides and source is not None and isinstance(params, dict):
        # The viewer's filters (a time window, a user) replace the chart's own, for the
        # sources that take them.
        given = {k: v for k, v in overrides.items() if k in source.params}
        if TIME_PARAMS & given.keys():
            params = {k: v for k, v in params.items() if k not in TIME_PARAMS}
        params = params | given
        data = {**data, "params": params}
    source, checked = binding_check(data, path)
    key = name if all(b.key != name for b in bindings) else f"{name}#{len(bindings) + 1}"
    bindings.append(Binding(key, path, source, params, checked))
    return {"name": key}


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest, found without recursion (the checks that follow
    recurse, and must not meet a spec that exhausts the stack)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def spec_prepare(spec: Any, *, overrides: dict[str, Any] | None = None) -> PreparedSpec:
    """Check bindings and the Vega-Lite schema; ``SpecError``/``SourceError`` name the path."""
    if not isinstance(spec, dict):
        raise SpecError("spec: must be a JSON object.", fields={"spec": ["Must be an object."]})
    if _depth(spec) > MAX_DEPTH:
        raise SpecError(
            "spec: nested too deeply.", fields={"spec": [f"At most {MAX_DEPTH} levels deep."]}
        )
    if len(json.dumps(spec, separators=(",", ":"))) > MAX_SPEC_BYTES:
        raise SpecError("spec: too large.", fields={"spec": [f"At most {MAX_SPEC_BYTES} bytes."]})
    bindings: list[Binding] = []
    bound = _walk(spec, "spec", bindings, overrides or {})
    spec_check(bound)
    return PreparedSpec(stored=spec, bound=bound, bindings=tuple(bindings))


def spec_render(spec: Any, *, actor: Actor, overrides: dict[str, Any] | None = None) -> Rendered:
    """The spec with its bindings filled with the rows ``actor`` may see."""
    prepared = spec_prepare(spec, overrides=overrides)
    rendered = dict(prepared.bound)
    datasets = dict(rendered.get("datasets") or {})
    rows: dict[str, int] = {}
    truncated: list[str] = []
    for binding in prepared.bindings:
        try:
            values, cut = source_rows(binding.source, binding.params, actor=actor)
        except ApplicationError as error:
            if error.status != 400:
                raise
            # A source's own refusal of a parameter: name it where the spec has it.
            raise ApplicationError(
                error.message,
                fields={f"{binding.path}.params.{k}": v for k, v in error.fields.items()},
                code=error.code,
            ) from error
        datasets[binding.key] = values
        rows[binding.key] = len(values)
        if cut:
            truncated.append(binding.key)
    if datasets:
        rendered["datasets"] = datasets
    return Rendered(spec=rendered, rows=rows, truncated=tuple(truncated))


def visualization_create(
    *, actor: Actor, name: str, spec: Any, description: str = ""
) -> Visualization:
    require(actor, EDIT)
    if actor.user_id is None:
        raise ApplicationError("Only a user can own a chart.", code="invalid")
    prepared = spec_prepare(spec)
    with transaction.atomic():
        return Visualization.objects.create(
            owner_id=actor.user_id, name=name, description=description, spec=prepared.stored
        )


def visualization_update(
    *, actor: Actor, visualization_id: uuid.UUID, **changes: Any
) -> Visualization:
    """Change name, description or spec of a chart the actor owns (anyone's with manage)."""
    found = visualization_get(actor=actor, visualization_id=visualization_id, action=EDIT)
    if "spec" in changes:
        changes["spec"] = spec_prepare(changes["spec"]).stored
    with transaction.atomic():
        for field, value in changes.items():
            setattr(found, field, value)
        found.save(update_fields=[*changes, "updated_at"])
    return found


def visualization_delete(*, actor: Actor, visualization_id: uuid.UUID) -> None:
    found = visualization_get(actor=actor, visualization_id=visualization_id, action=EDIT)
    found.delete()
