"""Operator endpoints over the event outbox."""

import uuid

import pytest
from django.utils import timezone

from lumina.kernel.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _row(status=OutboxEvent.Status.FAILED, name="gone.Removed", **extra):
    return OutboxEvent.objects.create(
        id=uuid.uuid4(),
        name=name,
        version=1,
        kind="domain",
        payload={},
        occurred_at=timezone.now(),
        next_attempt_at=timezone.now(),
        status=status,
        **extra,
    )


def test_list_is_paginated_and_filtered_by_status(admin_client):
    failed = [_row() for _ in range(3)]
    _row(status=OutboxEvent.Status.DELIVERED)
    response = admin_client.get("/api/v1/events/outbox", {"status": "failed", "page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"] is not None
    assert {r["id"] for r in body["results"]} <= {str(r.id) for r in failed}


def test_unknown_status_filter_is_a_400_naming_the_field(admin_client):
    response = admin_client.get("/api/v1/events/outbox", {"status": "lost"})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]


def test_replay_records_another_attempt(admin_client):
    row = _row(attempts=3)
    response = admin_client.post(f"/api/v1/events/outbox/{row.id}/replay")
    assert response.status_code == 200
    body = response.json()
    assert body["attempts"] == 4
    assert "UnknownEventError" in body["last_error"]  # still no class for gone.Removed


def test_replay_of_a_missing_event_is_a_404(admin_client):
    response = admin_client.post(f"/api/v1/events/outbox/{uuid.uuid4()}/replay")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_non_staff_users_are_refused(api_client, django_user_model):
    user = django_user_model.objects.create_user("dev@example.com", "pw-long-enough-1")
    api_client.force_authenticate(user)
    response = api_client.get("/api/v1/events/outbox")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
