"""The ui context's public interface: the only module other contexts may import.

Plain functions and frozen dataclasses; never models.
"""

from __future__ import annotations

import dataclasses as _dataclasses
import datetime as _dt
import uuid as _uuid
from typing import Any as _Any

from lumina.kernel.errors import NotFoundError as _NotFoundError
from lumina.security.api import Actor as _Actor
from lumina.security.api import require as _require
from lumina.ui.selectors.visualization_templates import TEMPLATES as _TEMPLATES
from lumina.ui.selectors.visualizations import READ as _VIZ_READ
from lumina.ui.selectors.visualizations import visualization_get as _visualization_get
from lumina.ui.selectors.visualizations import visualization_list as _visualization_list
from lumina.ui.services.visualizations import spec_render as _spec_render
from lumina.ui.vegalite import schema_version as vega_lite_version

# --- Visualizations ---------------------------------------------------------------------

__all__ = [
    "RenderedChart",
    "VisualizationDTO",
    "VisualizationTemplateDTO",
    "template_render",
    "templates_list",
    "vega_lite_version",
    "visualization_get",
    "visualization_list",
    "visualization_render",
]


@_dataclasses.dataclass(frozen=True)
class VisualizationDTO:
    id: _uuid.UUID
    owner_id: _uuid.UUID
    name: str
    description: str
    spec: dict[str, _Any]
    created_at: _dt.datetime
    updated_at: _dt.datetime


@_dataclasses.dataclass(frozen=True)
class VisualizationTemplateDTO:
    key: str
    name: str
    description: str
    spec: dict[str, _Any]


@_dataclasses.dataclass(frozen=True)
class RenderedChart:
    """A spec vega-embed draws as it is: Lumina sources became named ``datasets``."""

    spec: dict[str, _Any]
    rows: dict[str, int]
    truncated: tuple[str, ...]


def _dto(found: _Any) -> VisualizationDTO:
    return VisualizationDTO(
        id=found.id,
        owner_id=found.owner_id,
        name=found.name,
        description=found.description,
        spec=found.spec,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def visualization_list(*, actor: _Actor) -> list[VisualizationDTO]:
    """The actor's charts (everyone's with ``visualizations.manage``), newest first."""
    return [_dto(found) for found in _visualization_list(actor=actor)[:500]]


def visualization_get(*, actor: _Actor, visualization_id: _uuid.UUID) -> VisualizationDTO:
    """A chart the actor may see; ``NotFoundError`` alike for a missing one and another's."""
    return _dto(_visualization_get(actor=actor, visualization_id=visualization_id))


def visualization_render(
    *, actor: _Actor, visualization_id: _uuid.UUID, filters: dict[str, _Any] | None = None
) -> RenderedChart:
    """A saved chart with the rows the actor may see. ``filters``: days, since, until (ISO
    dates), user (id) — replacing the chart's own where its sources take them."""
    found = _visualization_get(actor=actor, visualization_id=visualization_id)
    return _rendered(_spec_render(found.spec, actor=actor, overrides=filters))


def templates_list(*, actor: _Actor) -> list[VisualizationTemplateDTO]:
    """The built-in dashboard charts (cost by day, tokens by model, latency, errors …)."""
    _require(actor, _VIZ_READ)
    return [
        VisualizationTemplateDTO(t.key, t.name, t.description, t.spec_copy())
        for t in _TEMPLATES.values()
    ]


def template_render(
    *, actor: _Actor, key: str, filters: dict[str, _Any] | None = None
) -> RenderedChart:
    """A built-in chart with the actor's data; ``NotFoundError`` for an unknown key."""
    _require(actor, _VIZ_READ)
    template = _TEMPLATES.get(key)
    if template is None:
        raise _NotFoundError(f"No template {key!r}.", fields={"key": ["No such template."]})
    return _rendered(_spec_render(template.spec_copy(), actor=actor, overrides=filters))


def _rendered(rendered: _Any) -> RenderedChart:
    return RenderedChart(spec=rendered.spec, rows=rendered.rows, truncated=rendered.truncated)
