"""Built-in charts for the dashboard, offered as templates (copy one to save your own).

They are code, not rows: every deployment gets the same ones, and a new version of Lumina
updates them without a data migration.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"


@dataclasses.dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    spec: dict[str, Any]

    def spec_copy(self) -> dict[str, Any]:
        return copy.deepcopy(self.spec)


def _chart(title: str, data: dict, mark: Any, encoding: dict, **extra: Any) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": "container",
        "data": data,
        "mark": mark,
        "encoding": encoding,
        **extra,
    }


TEMPLATES: dict[str, Template] = {
    template.key: template
    for template in (
        Template(
            "cost_by_day",
            "Cost by day",
            "US dollars spent per UTC day over the last 30 days.",
            _chart(
                "Cost by day (USD)",
                {"name": "lumina:usage", "params": {"days": 30, "group_by": "day"}},
                {"type": "bar", "tooltip": True},
                {
                    "x": {
                        "field": "day",
                        "type": "temporal",
                        "timeUnit": "utcyearmonthdate",
                        "title": "Day",
                    },
                    "y": {"field": "cost", "type": "quantitative", "title": "USD"},
                },
            ),
        ),
        Template(
            "tokens_by_model",
            "Tokens by model",
            "Input and output tokens per model over the last 30 days.",
            _chart(
                "Tokens by model",
                {"name": "lumina:usage", "params": {"days": 30, "group_by": "model"}},
                {"type": "bar", "tooltip": True},
                {
                    "y": {"field": "model", "type": "nominal", "sort": "-x", "title": "Model"},
                    "x": {"field": "tokens", "type": "quantitative", "title": "Tokens"},
                    "color": {"field": "kind", "type": "nominal", "title": "Tokens"},
                },
                transform=[{"fold": ["input_tokens", "output_tokens"], "as": ["kind", "tokens"]}],
            ),
        ),
        Template(
            "latency_percentiles",
            "Latency percentiles",
            "p50, p90 and p99 latency of successful requests per day (ms).",
            _chart(
                "Latency by day (ms)",
                {"name": "lumina:latency", "params": {"days": 30, "group_by": "day"}},
                {"type": "line", "point": True, "tooltip": True},
                {
                    "x": {
                        "field": "day",
                        "type": "temporal",
                        "timeUnit": "utcyearmonthdate",
                        "title": "Day",
                    },
                    "y": {"field": "ms", "type": "quantitative", "title": "ms"},
                    "color": {"field": "percentile", "type": "nominal"},
                },
                transform=[
                    {
                        "fold": ["latency_p50", "latency_p90", "latency_p99"],
                        "as": ["percentile", "ms"],
                    }
                ],
            ),
        ),
        Template(
            "errors_by_day",
            "Errors by day",
            "Requests that did not end ok, per day and status.",
            _chart(
                "Errors by day",
                {"name": "lumina:errors", "params": {"days": 30, "group_by": ["day", "status"]}},
                {"type": "bar", "tooltip": True},
                {
                    "x": {
                        "field": "day",
                        "type": "temporal",
                        "timeUnit": "utcyearmonthdate",
                        "title": "Day",
                    },
                    "y": {"field": "errors", "type": "quantitative", "title": "Errors"},
                    "color": {"field": "status", "type": "nominal"},
                },
            ),
        ),
        Template(
            "tool_executions",
            "Tool runs",
            "Tool runs per day and status.",
            _chart(
                "Tool runs by day",
                {
                    "name": "lumina:tool_executions",
                    "params": {"days": 30, "group_by": ["day", "status"]},
                },
                {"type": "bar", "tooltip": True},
                {
                    "x": {
                        "field": "day",
                        "type": "temporal",
                        "timeUnit": "utcyearmonthdate",
                        "title": "Day",
                    },
                    "y": {"field": "executions", "type": "quantitative", "title": "Runs"},
                    "color": {"field": "status", "type": "nominal"},
                },
            ),
        ),
    )
}
