"""The audit endpoints and admin page: filtered, paginated, permission-checked, read-only."""

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.events.base import SecurityEvent
from lumina.security.events.crypto import SecretDecrypted
from lumina.security.events.rbac import AccessDenied
from lumina.security.models.audit import AuditEntry
from lumina.security.services.audit import audit_append

pytestmark = pytest.mark.django_db


def _append(event_class: type[SecurityEvent], **fields) -> AuditEntry:
    return audit_append(event=event_class(**fields))


@pytest.fixture
def entries():
    alice, bob = uuid.uuid4(), uuid.uuid4()
    old = timezone.now() - dt.timedelta(days=10)
    rows = [
        _append(SecretDecrypted, owner="a:1", data_key_id=uuid.uuid4(), actor_id=alice),
        _append(SecretDecrypted, owner="a:2", data_key_id=uuid.uuid4(), actor_id=bob),
        _append(
            AccessDenied,
            action="security.audit.read",
            reason="no",
            actor_id=bob,
            occurred_at=old,
        ),
    ]
    return {"alice": alice, "bob": bob, "old": old, "rows": rows}


@pytest.fixture
def user_client(django_user_model):
    user = django_user_model.objects.create_user("reader@example.com", "a long passphrase")
    client = APIClient()  # apart from admin_client, which shares the api_client fixture
    client.force_authenticate(user)
    client.user = user
    return client


def _sequences(response) -> list[int]:
    return [row["sequence"] for row in response.json()["results"]]


def test_entries_are_listed_newest_first_with_their_chain_fields(admin_client, entries):
    response = admin_client.get("/api/v1/audit/entries")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert _sequences(response) == [3, 2, 1]
    newest = body["results"][0]
    assert newest["action"] == "security.AccessDenied"
    assert newest["outcome"] == "denied"
    assert newest["prev_hash"] == entries["rows"][1].hash
    assert newest["details"]["action"] == "security.audit.read"
    assert newest["target"] == "security.audit.read"


def test_entries_are_paginated(admin_client, entries):
    response = admin_client.get("/api/v1/audit/entries", {"page_size": 2})
    assert _sequences(response) == [3, 2]
    assert response.json()["next"] is not None


def test_entries_filter_by_action_actor_outcome_and_time(admin_client, entries):
    get = admin_client.get
    by_action = get("/api/v1/audit/entries", {"action": "security.SecretDecrypted"})
    assert _sequences(by_action) == [2, 1]
    assert _sequences(get("/api/v1/audit/entries", {"actor_id": str(entries["bob"])})) == [3, 2]
    assert _sequences(get("/api/v1/audit/entries", {"outcome": "denied"})) == [3]
    since = (entries["old"] + dt.timedelta(days=1)).isoformat()
    assert _sequences(get("/api/v1/audit/entries", {"since": since})) == [2, 1]
    until = (entries["old"] + dt.timedelta(seconds=1)).isoformat()
    assert _sequences(get("/api/v1/audit/entries", {"until": until})) == [3]
    combined = {"actor_id": str(entries["bob"]), "outcome": "success"}
    assert _sequences(get("/api/v1/audit/entries", combined)) == [2]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"actor_id": "not-a-uuid"}, "actor_id"),
        ({"outcome": "maybe"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-45T00:00:00Z"}, "until"),
        ({"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, "until"),
        ({"action": "x" * 201}, "action"),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(admin_client, entries, params, field):
    response = admin_client.get("/api/v1/audit/entries", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]


def test_verify_endpoint_reports_the_chain(admin_client, entries):
    response = admin_client.get("/api/v1/audit/verify")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "checked": 3,
        "first_broken_seq": None,
        "reason": "intact",
        "head_hash": entries["rows"][2].hash,
    }


@pytest.mark.parametrize("path", ["/api/v1/audit/entries", "/api/v1/audit/verify"])
def test_ordinary_users_are_refused_and_the_refusal_is_published(user_client, entries, path):
    response = user_client.get(path)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "results" not in response.json()
    denied = OutboxEvent.objects.get(name="security.AccessDenied")
    assert denied.payload["action"] == "security.audit.read"
    assert denied.payload["actor_id"] == str(user_client.user.pk)
    assert denied.payload["outcome"] == "denied"


def test_anonymous_requests_are_refused(api_client):
    response = api_client.get("/api/v1/audit/entries")
    assert response.status_code in (401, 403)  # 401 where a token scheme is offered
    assert response.json()["error"]["code"] == "not_authenticated"


def test_audit_admin_lists_filters_and_searches_but_never_changes(client, admin_user, entries):
    client.force_login(admin_user)
    page = client.get("/admin/security/auditentry/", {"outcome": "denied"})
    assert page.status_code == 200
    assert [e.action for e in page.context["cl"].result_list] == ["security.AccessDenied"]
    by_action = client.get("/admin/security/auditentry/", {"action": "security.SecretDecrypted"})
    assert by_action.context["cl"].result_count == 2

    found = client.get("/admin/security/auditentry/", {"q": str(entries["alice"])})
    assert found.status_code == 200
    assert found.context["cl"].result_count == 1
    nothing = client.get("/admin/security/auditentry/", {"q": "not-a-uuid"})
    assert nothing.status_code == 200

    entry = entries["rows"][0]
    detail = client.get(f"/admin/security/auditentry/{entry.sequence}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert client.get("/admin/security/auditentry/add/").status_code == 403
    assert client.post(f"/admin/security/auditentry/{entry.sequence}/delete/").status_code == 403
    assert AuditEntry.objects.count() == 3
