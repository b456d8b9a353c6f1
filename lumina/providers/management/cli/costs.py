"""``providers costs``: a cost report from the daily rollups; ``providers costs rebuild``."""

from __future__ import annotations

import datetime as dt
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from lumina.kernel.errors import ApplicationError
from lumina.providers.selectors.costs import GROUPS, CostRow, cost_report, cost_total
from lumina.providers.selectors.visibility import usage_user_visible
from lumina.providers.services.costs import costs_rebuild
from lumina.security.api import Actor

# Whoever runs manage.py controls the deployment: the CLI reports on everyone.
CLI_ACTOR = Actor.system("cli")

_NUMBERS = (
    ("requests", "requests"),
    ("errors", "errors"),
    ("estimated", "estimated"),
    ("input", "input_tokens"),
    ("cached", "cached_input_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
)


def register(commands) -> None:
    costs = commands.add_parser(
        "costs", help="Cost report from the daily rollups; 'costs rebuild' recomputes them."
    )
    costs.add_argument("--since", metavar="YYYY-MM-DD", help="First UTC day (required).")
    costs.add_argument("--until", metavar="YYYY-MM-DD", help="Last UTC day (default today).")
    costs.add_argument(
        "--group-by",
        default="",
        metavar="KEYS",
        help=f"Comma-separated subset of {','.join(GROUPS)} (default: one total).",
    )
    costs.add_argument("--user", metavar="UUID", help="Only this user's usage.")
    costs.add_argument("--token", metavar="UUID", help="Only this API token's usage.")
    costs.set_defaults(handler=report_costs)
    actions = costs.add_subparsers(dest="costs_command", required=False, metavar="ACTION")
    rebuild = actions.add_parser(
        "rebuild", help="Recompute the daily rollups from the raw usage ledger."
    )
    rebuild.set_defaults(handler=rebuild_costs)


def _date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def _uuid(name: str, value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"--{name}: {value!r} is not a UUID") from None


def _key_cells(row: CostRow, groups: list[str]) -> list[str]:
    cells = []
    for group in groups:
        if group == "provider":
            cells.append(row.provider_name or (str(row.provider_id) if row.provider_id else "-"))
        else:
            value = getattr(row, GROUPS[group][0])
            cells.append("-" if value in (None, "") else str(value))
    return cells


def _number_cells(row: CostRow) -> list[str]:
    return [str(getattr(row, field)) for _, field in _NUMBERS] + [f"{row.cost:.6f}"]


def report_costs(
    command: BaseCommand,
    *,
    since: str | None,
    until: str | None,
    group_by: str,
    user: str | None,
    token: str | None,
    **_,
) -> None:
    if since is None:
        raise CommandError("--since is required (YYYY-MM-DD)")
    groups = list(dict.fromkeys(name.strip() for name in group_by.split(",") if name.strip()))
    first = _date("since", since)
    last = _date("until", until) if until else timezone.now().date()
    try:
        rows = cost_report(
            since=first,
            until=last,
            group_by=groups,
            user_id=usage_user_visible(CLI_ACTOR, _uuid("user", user)),
            token_id=_uuid("token", token),
        )
    except ApplicationError as error:
        details = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.fields.items())
        raise CommandError(f"{error.message} {details}".strip()) from None

    header = [*groups, *(label for label, _ in _NUMBERS), "cost_usd"]
    table = [_key_cells(row, groups) + _number_cells(row) for row in rows]
    total = ["TOTAL", *[""] * (len(groups) - 1)] if groups else []
    table.append(total + _number_cells(cost_total(rows)))
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    keys = len(groups)

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < keys else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    command.stdout.write(f"costs from {first.isoformat()} to {last.isoformat()} (UTC days)")
    command.stdout.write(line(header))
    for cells in table[:-1]:
        command.stdout.write(line(cells))
    command.stdout.write(line(["-" * width for width in widths]))
    command.stdout.write(line(table[-1]))


def rebuild_costs(command: BaseCommand, **_) -> None:
    report = costs_rebuild()
    command.stdout.write(
        f"rebuilt the daily cost rollups from {report.requests} usage records: "
        f"{report.rows} rows (before: {report.rows_before}), total ${report.cost:.6f}, "
        f"{report.pending_events} not-yet-projected events covered, in {report.seconds:.2f} s"
    )
