"""``/api/v1/providers/costs``, ``/usage`` and ``/budgets``: visibility, validation, CRUD."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from lumina.providers.models.usage import Budget, DailyUsage
from lumina.providers.services.usage import usage_flush, usage_submit
from lumina.security.models.rbac import Role, RoleAssignment
from tests.providers import usage_support
from tests.providers.usage_support import (
    entry,
    fresh_window,
)
from tests.security.rbac_support import events_named

# Fixtures of tests/providers/usage_support.py used here.
ledger = usage_support.ledger
budgets = usage_support.budgets

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("budgets")]

COSTS = "/api/v1/providers/costs"
USAGE = "/api/v1/providers/usage"
BUDGETS = "/api/v1/providers/budgets"
DAY1 = dt.date(2026, 5, 4)
DAY2 = dt.date(2026, 5, 5)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_error(response, status: int, code: str | None = None, field: str | None = None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert field in error["fields"], error
    return error


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", None)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob@example.com", None)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ops@example.com", None, is_staff=True)


@pytest.fixture
def reader(django_user_model):
    user = django_user_model.objects.create_user("finance@example.com", None)
    role = Role.objects.create(name="cost reader", permissions=["providers.usage.read_all"])
    RoleAssignment.objects.create(role=role, user=user)
    return user


def user_with(django_user_model, email: str, role: str | None = None, **extra):
    user = django_user_model.objects.create_user(email, None, **extra)
    if role is not None:
        RoleAssignment.objects.create(role=Role.objects.get(name=role), user=user)
    return user


@pytest.fixture
def usage(ada, bob, django_capture_on_commit_callbacks):
    """Ada: two requests on day 1, one on day 2; Bob: one on day 2 (projected)."""
    at = lambda day, hour: dt.datetime.combine(day, dt.time(hour), dt.UTC)  # noqa: E731
    items = [
        entry(user_id=ada.pk, occurred_at=at(DAY1, 9), cost=Decimal("0.10")),
        entry(user_id=ada.pk, occurred_at=at(DAY1, 10), cost=Decimal("0.20"), model="gpt-4o"),
        entry(user_id=ada.pk, occurred_at=at(DAY2, 11), cost=Decimal("0.30")),
        entry(user_id=bob.pk, token_id=None, occurred_at=at(DAY2, 12), cost=Decimal("1.5")),
    ]
    for item in items:
        usage_submit(item)
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()
    return items


# -- cost reports -------------------------------------------------------------------------


def test_readers_get_every_users_costs_grouped_with_totals(reader, ada, bob, usage):
    response = client_for(reader).get(
        COSTS, {"since": DAY1.isoformat(), "until": DAY2.isoformat(), "group_by": "user,day"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group_by"] == ["user", "day"]
    rows = {(row["user_id"], row["day"]): row for row in body["rows"]}
    assert set(rows) == {
        (str(ada.pk), DAY1.isoformat()),
        (str(ada.pk), DAY2.isoformat()),
        (str(bob.pk), DAY2.isoformat()),
    }
    first = rows[(str(ada.pk), DAY1.isoformat())]
    assert first["requests"] == 2
    assert Decimal(first["cost"]) == Decimal("0.30")
    assert first["input_tokens"] == 200
    assert first["total_tokens"] == 240
    assert first["model"] is None  # not grouped by model
    assert body["totals"]["requests"] == 4
    assert Decimal(body["totals"]["cost"]) == Decimal("2.10")


def test_readers_may_report_on_one_user(reader, bob, usage):
    response = client_for(reader).get(COSTS, {"since": DAY1.isoformat(), "user": str(bob.pk)})
    assert response.status_code == 200
    assert Decimal(response.json()["totals"]["cost"]) == Decimal("1.5")


@pytest.mark.parametrize(
    ("role", "extra"),
    [("Developer", {}), ("Viewer", {}), (None, {"is_staff": True})],
    ids=["developer", "viewer", "staff-without-a-role"],
)
def test_providers_read_and_staff_show_nobody_elses_usage(
    django_user_model, django_capture_on_commit_callbacks, ada, bob, usage, role, extra
):
    """The attack: with providers.read (Developer, Viewer) or is_staff, read everyone's usage."""
    mallory = user_with(django_user_model, "mallory@example.com", role, **extra)
    usage_submit(
        own := entry(user_id=mallory.pk, occurred_at=dt.datetime(2026, 5, 4, 8, tzinfo=dt.UTC))
    )
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()
    theirs = Budget.objects.create(scope="user", subject_id=bob.pk, requests_per_minute=10)
    client = client_for(mallory)
    window = {"since": DAY1.isoformat(), "until": DAY2.isoformat()}
    # The report covers Mallory's one request only, though Ada's and Bob's are there.
    report = client.get(COSTS, window).json()
    assert DailyUsage.objects.exclude(user_id=mallory.pk).exists()
    assert report["totals"]["requests"] == 1
    everyone = client.get(COSTS, {**window, "group_by": "user"}).json()
    assert [row["user_id"] for row in everyone["rows"]] == [str(mallory.pk)]
    assert_error(client.get(COSTS, {**window, "user": str(bob.pk)}), 403, "permission_denied")
    records = client.get(USAGE, {"since": "2026-05-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"})
    assert [row["id"] for row in records.json()["results"]] == [str(own.id)]
    assert_error(client.get(USAGE, {"user": str(ada.pk)}), 403, "permission_denied")
    assert client.get(BUDGETS).json()["count"] == 0
    assert_error(client.get(f"{BUDGETS}/{theirs.id}"), 404)
    denied = events_named("security.AccessDenied")
    assert {event.payload["action"] for event in denied} == {"providers.usage.read_all"}


def test_the_admin_role_sees_everyones_usage(django_user_model, ada, bob, usage):
    admin = user_with(django_user_model, "admin@example.com", "Admin")
    report = client_for(admin).get(COSTS, {"since": DAY1.isoformat(), "user": str(bob.pk)})
    assert report.status_code == 200
    assert Decimal(report.json()["totals"]["cost"]) == Decimal("1.5")


def test_everyone_else_sees_only_their_own_costs(ada, bob, usage):
    client = client_for(ada)
    response = client.get(COSTS, {"since": DAY1.isoformat(), "until": DAY2.isoformat()})
    assert response.status_code == 200
    assert response.json()["totals"]["requests"] == 3
    assert Decimal(response.json()["totals"]["cost"]) == Decimal("0.60")
    assert_error(client.get(COSTS, {"since": DAY1.isoformat(), "user": str(bob.pk)}), 403)


def test_bad_dates_and_unknown_groups_are_refused_naming_the_field(staff):
    client = client_for(staff)
    assert_error(client.get(COSTS, {"since": "2026-13-01"}), 400, "invalid", "since")
    assert_error(client.get(COSTS, {}), 400, "invalid", "since")
    error = assert_error(
        client.get(COSTS, {"since": DAY1.isoformat(), "group_by": "user,colour"}),
        400,
        "invalid",
        "group_by",
    )
    assert "colour" in error["fields"]["group_by"][0]
    assert_error(
        client.get(COSTS, {"since": DAY2.isoformat(), "until": DAY1.isoformat()}),
        400,
        "invalid",
        "until",
    )
    assert_error(client.get(COSTS, {"since": DAY1.isoformat(), "user": "nope"}), 400, field="user")


def test_reports_need_an_authenticated_caller():
    assert APIClient().get(COSTS, {"since": DAY1.isoformat()}).status_code in (401, 403)


# -- the raw ledger -----------------------------------------------------------------------


def test_usage_records_are_listed_newest_first_in_pages(reader, usage):
    client = client_for(reader)
    window = {"since": "2026-05-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}
    response = client.get(USAGE, {**window, "page_size": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 4
    assert [row["id"] for row in body["results"]] == [str(i.id) for i in reversed(usage)][:3]
    assert body["next"] is not None
    record = body["results"][0]
    assert Decimal(record["cost"]) == Decimal("1.5")
    assert record["status"] == "ok"
    filtered = client.get(USAGE, {**window, "model": "gpt-4o"}).json()
    assert [row["id"] for row in filtered["results"]] == [str(usage[1].id)]


def test_usage_defaults_to_the_last_day_and_users_see_only_their_own(ada, bob, usage):
    usage_submit(recent := entry(user_id=ada.pk))
    usage_submit(entry(user_id=bob.pk))
    usage_flush()
    response = client_for(ada).get(USAGE)
    assert [row["id"] for row in response.json()["results"]] == [str(recent.id)]
    assert_error(client_for(ada).get(USAGE, {"user": str(bob.pk)}), 403)
    assert_error(client_for(ada).get(USAGE, {"status": "weird"}), 400, field="status")


# -- budgets ------------------------------------------------------------------------------


def test_budgets_can_be_created_read_changed_and_deleted(staff, ada):
    staff.is_superuser = True
    staff.save()
    client = client_for(staff)
    created = client.post(
        BUDGETS,
        {"scope": "user", "subject_id": str(ada.pk), "period": "day", "limit_usd": "12.5"},
        format="json",
    )
    assert created.status_code == 201, created.content
    budget = created.json()
    assert budget["limit_usd"] == "12.5000"
    assert budget["requests_per_minute"] is None
    assert budget["enabled"] is True
    url = f"{BUDGETS}/{budget['id']}"

    assert client.get(url).json()["period"] == "day"
    changed = client.patch(url, {"requests_per_minute": 60, "enabled": False}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["requests_per_minute"] == 60
    assert changed.json()["limit_usd"] == "12.5000"  # untouched
    assert client.get(BUDGETS).json()["count"] == 1

    assert client.delete(url).status_code == 204
    assert not Budget.objects.exists()
    assert_error(client.get(url), 404, "not_found")


def test_a_budget_without_any_limit_or_with_bad_values_is_refused(admin_client):
    none = admin_client.post(BUDGETS, {"scope": "user", "subject_id": str(uuid.uuid4())},
                             format="json")  # fmt: skip
    assert_error(none, 400, "invalid")
    negative = admin_client.post(
        BUDGETS,
        {"scope": "team", "subject_id": str(uuid.uuid4()), "limit_usd": "-1"},
        format="json",
    )
    error = assert_error(negative, 400, "invalid")
    assert {"scope", "limit_usd"} <= set(error["fields"])


def test_users_see_only_their_own_budgets_and_may_not_manage_them(ada, bob):
    mine = Budget.objects.create(scope="user", subject_id=ada.pk, requests_per_minute=10)
    theirs = Budget.objects.create(scope="user", subject_id=bob.pk, requests_per_minute=10)
    client = client_for(ada)
    assert [row["id"] for row in client.get(BUDGETS).json()["results"]] == [str(mine.id)]
    assert client.get(f"{BUDGETS}/{mine.id}").status_code == 200
    assert_error(client.get(f"{BUDGETS}/{theirs.id}"), 404)
    assert_error(
        client.patch(f"{BUDGETS}/{mine.id}", {"requests_per_minute": 1000}, format="json"),
        403,
        "permission_denied",
    )
    assert_error(
        client.post(
            BUDGETS, {"scope": "user", "subject_id": str(ada.pk), "limit_usd": "1"}, format="json"
        ),
        403,
    )
    assert_error(client.delete(f"{BUDGETS}/{theirs.id}"), 403)
    assert Budget.objects.count() == 2


def test_costs_of_the_read_model_match_what_the_rollups_hold(reader, usage):
    body = client_for(reader).get(COSTS, {"since": DAY1.isoformat(), "until": DAY2.isoformat()})
    total = sum(row.cost for row in DailyUsage.objects.all())
    assert Decimal(body.json()["totals"]["cost"]) == total


# -- admin console -----------------------------------------------------------------------


def test_the_admin_lists_usage_read_only_with_filters(client, admin_user, usage):
    client.force_login(admin_user)
    page = client.get("/admin/providers/usagerecord/", {"status__exact": "ok", "model": "gpt-4o"})
    assert page.status_code == 200
    record = usage[1]
    detail = client.get(f"/admin/providers/usagerecord/{record.id}/change/")
    assert detail.status_code == 200
    assert "gpt-4o" in detail.content.decode()
    assert client.get("/admin/providers/usagerecord/add/").status_code == 403
    searched = client.get("/admin/providers/usagerecord/", {"q": "gpt-4o"})
    assert searched.status_code == 200
    assert client.get("/admin/providers/usagerecord/", {"q": str(record.id)}).status_code == 200
    by_month = client.get("/admin/providers/usagerecord/", {"occurred_at__year": "2026"})
    assert by_month.status_code == 200
    assert client.get("/admin/providers/dailyusage/").status_code == 200


# Transactional: admission reads the rules from a worker thread, as on the server.
@pytest.mark.django_db(transaction=True)
def test_budgets_are_editable_in_the_admin_and_apply_at_once(client, admin_user, ada):
    from lumina.providers.services.budgets import RateLimitedError, budget_admit

    client.force_login(admin_user)

    def admit():
        return asyncio.run(
            budget_admit(
                user_id=ada.pk, token_id=None, estimated_tokens=1, estimated_cost=Decimal(0)
            )
        )

    admit()  # no rule yet: the snapshot is loaded, empty
    response = client.post(
        "/admin/providers/budget/add/",
        {"name": "ada", "scope": "user", "subject_id": str(ada.pk), "period": "month",
         "requests_per_minute": "1", "enabled": "on"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Budget.objects.get().requests_per_minute == 1
    fresh_window()
    admit()
    with pytest.raises(RateLimitedError):
        admit()
