"""``manage.py providers costs``: a report table with totals, and ``costs rebuild``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from lumina.providers.models.usage import DailyUsage
from lumina.providers.services.usage import usage_flush, usage_submit
from tests.providers import usage_support
from tests.providers.usage_support import ALICE, BOB, entry

# Fixtures of tests/providers/usage_support.py used here.
ledger = usage_support.ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ledger")]

DAY1 = dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 7, 2, 8, tzinfo=dt.UTC)


def providers(*args: str) -> str:
    out = StringIO()
    call_command("providers", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def usage(django_capture_on_commit_callbacks):
    for item in (
        entry(occurred_at=DAY1, cost=Decimal("0.25")),
        entry(occurred_at=DAY2, cost=Decimal("0.50"), model="gpt-4o"),
        entry(occurred_at=DAY2, user_id=BOB, cost=Decimal("1.00")),
    ):
        usage_submit(item)
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()


def test_costs_prints_a_grouped_table_with_totals(usage):
    output = providers(
        "costs", "--since", "2026-07-01", "--until", "2026-07-02", "--group-by", "user,model,day"
    )
    lines = output.splitlines()
    assert lines[0] == "costs from 2026-07-01 to 2026-07-02 (UTC days)"
    assert lines[1].split()[:5] == ["user", "model", "day", "requests", "errors"]
    body = [line.split() for line in lines[2:-2]]
    assert [(row[0], row[1], row[2], row[3], row[-1]) for row in body] == [
        (str(BOB), "gpt-4o-mini", "2026-07-02", "1", "1.000000"),  # ids sort as UUIDs
        (str(ALICE), "gpt-4o", "2026-07-02", "1", "0.500000"),
        (str(ALICE), "gpt-4o-mini", "2026-07-01", "1", "0.250000"),
    ]
    assert set(lines[-2].replace(" ", "")) == {"-"}
    total = lines[-1].split()
    assert total[0] == "TOTAL"
    assert total[1] == "3"  # requests
    assert total[-1] == "1.750000"


def test_costs_without_grouping_prints_one_total(usage):
    lines = providers("costs", "--since", "2026-07-02", "--until", "2026-07-02").splitlines()
    assert lines[1].split()[0] == "requests"
    assert lines[-1].split()[0] == "2"
    assert lines[-1].split()[-1] == "1.500000"


def test_costs_refuses_bad_arguments_naming_them():
    with pytest.raises(CommandError, match="--since is required"):
        providers("costs")
    with pytest.raises(CommandError, match="--since"):
        providers("costs", "--since", "July")
    with pytest.raises(CommandError, match="group_by"):
        providers("costs", "--since", "2026-07-01", "--group-by", "user,colour")
    with pytest.raises(CommandError, match="--user"):
        providers("costs", "--since", "2026-07-01", "--user", "ada")


def test_rebuild_recomputes_the_rollups_and_says_what_it_did(usage):
    DailyUsage.objects.all().delete()
    output = providers("costs", "rebuild")
    assert "from 3 usage records" in output
    assert "3 rows (before: 0)" in output
    assert "total $1.750000" in output
    assert DailyUsage.objects.count() == 3
    assert "TOTAL" in providers("costs", "--since", "2026-07-01", "--group-by", "day")
