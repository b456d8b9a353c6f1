"""Lumina data sources a chart's ``data`` may name, and the rows each one answers.

A binding is ``{"name": "lumina:<source>", "params": {...}}``. Every source reads through
another context's ``api`` as the viewer, so the rows are what the viewer may see there:
their own usage unless they hold ``providers.usage.read_all``, their own tool runs unless
``tools.executions.read_all``, their own memory unless ``memory.manage``. Parameters are
checked here first, so a bad one is a 400 naming ``<path>.params.<name>``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from django.utils import timezone

from lumina.kernel.errors import ApplicationError
from lumina.memory import api as memory_api
from lumina.providers import api as providers_api
from lumina.security.api import Actor
from lumina.tools import api as tools_api

PREFIX = "lumina:"
MAX_ROWS = 10_000
DEFAULT_DAYS = 30
MAX_DAYS = 366
TIME_PARAMS = frozenset({"days", "since", "until"})

USAGE_GROUPS = ("day", "model", "provider", "user", "token", "operation")
USAGE_METRICS = (
    "requests", "errors", "input_tokens", "output_tokens", "total_tokens", "cost",
)  # fmt: skip
LEDGER_GROUPS = ("day", "model", "provider", "operation", "user")
ERROR_GROUPS = (*LEDGER_GROUPS, "status", "error_code")
TOOL_GROUPS = ("day", "tool", "status")
TOPIC_SCOPES = ("user", "agent", "session", "collection")


class SourceError(ApplicationError):
    code = "invalid_data_source"
    status = 400


@dataclasses.dataclass(frozen=True)
class Window:
    since: dt.date
    until: dt.date


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    description: str
    params: Mapping[str, str]  # name -> what it takes, for the catalogue and the docs
    check: Callable[[dict[str, Any], str], dict[str, Any]]
    rows: Callable[[Actor, dict[str, Any]], list[dict[str, Any]]]


# -- parameter checks --------------------------------------------------------------------


def _bad(path: str, message: str) -> SourceError:
    return SourceError(f"{path}: {message}", fields={path: [message]})


def _unknown(params: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for name in params:
        if name not in allowed:
            raise _bad(
                f"{path}.{name}", f"Unknown parameter; this source takes {', '.join(allowed)}."
            )


def _date(value: Any, path: str) -> dt.date:
    if not isinstance(value, str):
        raise _bad(path, "Must be a date, YYYY-MM-DD.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _bad(path, "Must be a date, YYYY-MM-DD.") from None


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(path, f"Must be an integer from {low} to {high}.")
    return value


def _window(params: Mapping[str, Any], path: str) -> Window:
    """``days`` (a window ending today) or ``since``/``until`` (UTC days, both included)."""
    today = timezone.now().date()
    if "days" in params and ("since" in params or "until" in params):
        raise _bad(f"{path}.days", "Give days or since/until, not both.")
    if "since" in params or "until" in params:
        until = _date(params["until"], f"{path}.until") if "until" in params else today
        since = (
            _date(params["since"], f"{path}.since")
            if "since" in params
            else until - dt.timedelta(days=DEFAULT_DAYS - 1)
        )
        if until < since:
            raise _bad(f"{path}.until", "Must not be before since.")
        if (until - since).days >= MAX_DAYS:
            raise _bad(f"{path}.until", f"The range spans at most {MAX_DAYS} days.")
        return Window(since, until)
    days = _int(params.get("days", DEFAULT_DAYS), f"{path}.days", 1, MAX_DAYS)
    return Window(today - dt.timedelta(days=days - 1), today)


def _groups(params: Mapping[str, Any], path: str, allowed: tuple[str, ...], default: tuple) -> list:
    value = params.get("group_by", list(default))
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 3:
        raise _bad(f"{path}.group_by", "A name or a list of at most 3 names.")
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise _bad(
            f"{path}.group_by",
            f"Unknown {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}.",
        )
    return list(dict.fromkeys(names))


def _user(params: Mapping[str, Any], path: str) -> uuid.UUID | None:
    if "user" not in params or params["user"] is None:
        return None
    try:
        return uuid.UUID(str(params["user"])) if isinstance(params["user"], str) else None
    except ValueError:
        pass
    raise _bad(f"{path}.user", "Must be a user id (a UUID string).")


def _check_ledger(groups: tuple[str, ...], extra: tuple[str, ...] = ()):
    def check(params: dict[str, Any], path: str) -> dict[str, Any]:
        _unknown(params, ("days", "since", "until", "group_by", "user", *extra), path)
        return {
            "window": _window(params, path),
            "group_by": _groups(params, path, groups, ("day",)),
            "user_id": _user(params, path),
        }

    return check


def _check_usage(params: dict[str, Any], path: str) -> dict[str, Any]:
    checked = _check_ledger(USAGE_GROUPS, ("metric",))(params, path)
    metric = params.get("metric")
    if metric is not None and metric not in USAGE_METRICS:
        raise _bad(f"{path}.metric", f"Choose from {', '.join(USAGE_METRICS)}.")
    checked["metric"] = metric
    return checked


def _check_circuits(params: dict[str, Any], path: str) -> dict[str, Any]:
    _unknown(params, ("days", "since", "until"), path)
    return {"window": _window(params, path)}


def _check_tools(params: dict[str, Any], path: str) -> dict[str, Any]:
    _unknown(params, ("days", "since", "until", "group_by"), path)
    groups = _groups(params, path, TOOL_GROUPS, ("day",))
    return {"window": _window(params, path), "group_by": groups}


def _check_topics(params: dict[str, Any], path: str) -> dict[str, Any]:
    _unknown(params, ("scope", "key"), path)
    scope = params.get("scope", "user")
    if scope not in TOPIC_SCOPES:
        raise _bad(f"{path}.scope", f"Choose from {', '.join(TOPIC_SCOPES)}.")
    key = params.get("key", "")
    if not isinstance(key, str) or len(key) > 200:
        raise _bad(f"{path}.key", "A string of at most 200 characters.")
    if scope == "collection" and not key:
        raise _bad(f"{path}.key", "Name the collection.")
    return {"scope": scope, "key": key}


def _check_graph(params: dict[str, Any], path: str) -> dict[str, Any]:
    _unknown(params, ("part", "limit", "min_weight", "entity"), path)
    part = params.get("part", "nodes")
    if part not in ("nodes", "edges"):
        raise _bad(f"{path}.part", "Choose from nodes, edges.")
    min_weight = params.get("min_weight", 1.0)
    if isinstance(min_weight, bool) or not isinstance(min_weight, int | float) or min_weight < 0:
        raise _bad(f"{path}.min_weight", "A number, 0 or more.")
    entity = params.get("entity", "")
    if not isinstance(entity, str) or len(entity) > 200:
        raise _bad(f"{path}.entity", "A string of at most 200 characters.")
    return {
        "part": part,
        "limit": _int(params.get("limit", 200), f"{path}.limit", 1, 1000),
        "min_weight": float(min_weight),
        "entity": entity,
    }


# -- rows --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A chart's value: dates as ISO text, ids as strings."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _usage_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    found = providers_api.usage_totals(
        actor=actor,
        since=p["window"].since,
        until=p["window"].until,
        group_by=p["group_by"],
        user_id=p["user_id"],
    )
    keys = {"day": "day", "model": "model", "provider": "provider_name", "user": "user_id",
            "token": "token_id", "operation": "operation"}  # fmt: skip
    rows = []
    for row in found:
        out = {name: _plain(getattr(row, keys[name])) for name in p["group_by"]}
        metrics = {
            "requests": row.requests,
            "errors": row.errors,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "total_tokens": row.total_tokens,
            "cost": float(row.cost),  # US dollars; a chart plots floats
        }
        if p["metric"]:
            out["value"] = metrics[p["metric"]]
        else:
            out.update(metrics)
        rows.append(out)
    return rows


def _latency_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    found = providers_api.latency_percentiles(
        actor=actor,
        since=p["window"].since,
        until=p["window"].until,
        group_by=p["group_by"],
        user_id=p["user_id"],
    )
    rows = []
    for row in found:
        out = {name: _plain(value) for name, value in row.keys.items()}
        out["requests"] = row.requests
        for percentile, value in row.latency_ms.items():
            out[f"latency_p{percentile}"] = value
        for percentile, value in row.ttft_ms.items():
            out[f"ttft_p{percentile}"] = value
        rows.append(out)
    return rows


def _error_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    found = providers_api.error_counts(
        actor=actor,
        since=p["window"].since,
        until=p["window"].until,
        group_by=p["group_by"],
        user_id=p["user_id"],
    )
    return [
        {**{name: _plain(value) for name, value in row.keys.items()}, "errors": row.errors}
        for row in found
    ]


def _circuit_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    found = providers_api.circuit_changes(
        actor=actor, since=p["window"].since, until=p["window"].until
    )
    return [{k: _plain(v) for k, v in dataclasses.asdict(change).items()} for change in found]


def _tool_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    found = tools_api.execution_counts(
        actor=actor, since=p["window"].since, until=p["window"].until, group_by=p["group_by"]
    )
    return [
        {
            **{name: _plain(value) for name, value in row.keys.items()},
            "executions": row.executions,
            "mean_duration_ms": row.mean_duration_ms,
        }
        for row in found
    ]


def _topic_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    found = memory_api.topics_list(actor=actor, scope=p["scope"], key=p["key"])
    return [
        {
            "id": str(topic.id),
            "parent_id": _plain(topic.parent_id),
            "level": topic.level,
            "label": topic.label,
            "keywords": ", ".join(topic.keywords),
            "size": topic.size,
        }
        for topic in found
    ]


def _graph_rows(actor: Actor, p: dict[str, Any]) -> list[dict[str, Any]]:
    graph = memory_api.graph_get(
        actor=actor, entity=p["entity"], min_weight=p["min_weight"], limit=p["limit"]
    )
    if p["part"] == "nodes":
        return [
            {"id": str(n.id), "name": n.name, "kind": n.kind, "mentions": n.mentions}
            for n in graph.nodes
        ]
    names = {node.id: node.name for node in graph.nodes}
    return [
        {
            "source": names.get(edge.source, str(edge.source)),
            "target": names.get(edge.target, str(edge.target)),
            "kind": edge.kind,
            "weight": edge.weight,
        }
        for edge in graph.edges
    ]


_TIME = {"days": "1–366 (default 30)", "since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}
SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "lumina:usage",
            "Requests, errors, tokens and cost (US dollars) from the daily rollups.",
            {
                **_TIME,
                "group_by": ", ".join(USAGE_GROUPS),
                "user": "user id",
                "metric": "one of " + ", ".join(USAGE_METRICS) + " as `value`",
            },
            _check_usage,
            _usage_rows,
        ),
        Source(
            "lumina:latency",
            "p50/p90/p99 latency and time to first token (ms) of successful requests.",
            {**_TIME, "group_by": ", ".join(LEDGER_GROUPS), "user": "user id"},
            _check_ledger(LEDGER_GROUPS),
            _latency_rows,
        ),
        Source(
            "lumina:errors",
            "Requests that did not end ok.",
            {**_TIME, "group_by": ", ".join(ERROR_GROUPS), "user": "user id"},
            _check_ledger(ERROR_GROUPS),
            _error_rows,
        ),
        Source(
            "lumina:circuits",
            "Circuit breakers opening and closing (needs providers.read).",
            dict(_TIME),
            _check_circuits,
            _circuit_rows,
        ),
        Source(
            "lumina:tool_executions",
            "Tool runs and their mean duration (needs tools.read).",
            {**_TIME, "group_by": ", ".join(TOOL_GROUPS)},
            _check_tools,
            _tool_rows,
        ),
        Source(
            "lumina:memory_topics",
            "Topics of the viewer's memory (needs memory.read).",
            {"scope": ", ".join(TOPIC_SCOPES), "key": "session, agent or collection name"},
            _check_topics,
            _topic_rows,
        ),
        Source(
            "lumina:memory_graph",
            "The viewer's entity graph: its nodes or its edges (needs memory.read).",
            {
                "part": "nodes or edges",
                "limit": "1–1000 (default 200)",
                "min_weight": "number",
                "entity": "an entity and its neighbours",
            },
            _check_graph,
            _graph_rows,
        ),
    )
}


def binding_check(binding: Mapping[str, Any], path: str) -> tuple[Source, dict[str, Any]]:
    """The source a binding names and its checked parameters; ``SourceError`` naming the
    path of what is wrong."""
    _unknown(binding, ("name", "params"), path)
    source = SOURCES.get(binding.get("name", ""))
    if source is None:
        raise _bad(f"{path}.name", f"Unknown data source; choose from {', '.join(SOURCES)}.")
    params = binding.get("params", {})
    if not isinstance(params, dict):
        raise _bad(f"{path}.params", "Must be an object.")
    return source, source.check(dict(params), f"{path}.params")


def source_rows(
    source: Source, params: dict[str, Any], *, actor: Actor
) -> tuple[list[dict[str, Any]], bool]:
    """The rows the actor may see, at most ``MAX_ROWS``, and whether more were cut off."""
    rows = source.rows(actor, params)
    return rows[:MAX_ROWS], len(rows) > MAX_ROWS
