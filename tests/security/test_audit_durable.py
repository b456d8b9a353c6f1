"""Audit records of attempts and refusals outlive a rollback of the caller's transaction,
while ordinary events still follow their transaction."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connections, transaction

from lumina.kernel import bus
from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.models import OutboxEvent
from lumina.security import handlers
from lumina.security.api import require
from lumina.security.events.auth import LoginFailed
from lumina.security.events.base import SecurityEvent
from lumina.security.models.audit import AuditEntry
from lumina.security.services.audit import audit_verify
from lumina.security.services.auth import InvalidCredentialsError, user_authenticate
from lumina.security.services.users import user_create
from lumina.security.types import Actor
from tests.conftest import database_url_for_subprocess

pytestmark = pytest.mark.django_db


def durable_event_classes() -> list[type[SecurityEvent]]:
    return [cls for cls in handlers.security_event_classes() if cls.durable]


def test_attempts_refusals_and_disclosures_are_the_durable_events():
    names = {cls.name for cls in durable_event_classes()}
    assert {
        "security.AccessDenied",
        "security.LoginFailed",
        "security.LoginSucceeded",
        "security.AccountLocked",
        "security.AddressThrottled",
        "security.MfaFailed",
        "security.MfaVerified",
        "security.SecretDecrypted",
        "security.SecretDecryptionFailed",
    } <= names
    # Changes of state follow their transaction.
    assert not {"security.UserCreated", "security.RoleAssigned", "security.ApiTokenCreated"} & names


def test_an_access_denied_inside_a_rolled_back_transaction_is_still_audited():
    nobody = user_create(email="nobody@example.com", password="a long passphrase")
    actor = Actor(user_id=nobody.pk, email=nobody.email, ip_address="192.0.2.7")

    with pytest.raises(PermissionDeniedError), transaction.atomic():
        require(actor, "security.audit.read")

    entry = AuditEntry.objects.get(action="security.AccessDenied")
    assert entry.actor_id == nobody.pk
    assert entry.ip_address == "192.0.2.7"
    assert entry.details["action"] == "security.audit.read"
    assert audit_verify().ok
    # The event itself was rolled back with its transaction: nothing is delivered.
    assert not OutboxEvent.objects.filter(name="security.AccessDenied").exists()


def test_a_failed_login_inside_a_rolled_back_transaction_is_still_audited():
    user_create(email="target@example.com", password="a long passphrase")

    with pytest.raises(InvalidCredentialsError), transaction.atomic():
        user_authenticate(email="target@example.com", password="guess", ip_address="192.0.2.8")

    entry = AuditEntry.objects.get(action="security.LoginFailed")
    assert entry.details["email"] == "target@example.com"
    assert entry.ip_address == "192.0.2.8"


def test_an_ordinary_event_of_a_rolled_back_transaction_leaves_nothing():
    def create_then_fail() -> None:
        with transaction.atomic():
            user_create(email="never@example.com", password="a long passphrase")
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        create_then_fail()

    assert not AuditEntry.objects.filter(action="security.UserCreated").exists()
    assert not OutboxEvent.objects.filter(name="security.UserCreated").exists()


def test_a_durable_event_of_a_committed_transaction_is_appended_once(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        bus.publish(LoginFailed(email="once@example.com", user_id=None))
        # Appended at publish, before the commit...
        assert AuditEntry.objects.filter(action="security.LoginFailed").count() == 1

    # ...and the delivery after commit finds it there.
    assert OutboxEvent.objects.get(name="security.LoginFailed").status == "delivered"
    assert AuditEntry.objects.filter(action="security.LoginFailed").count() == 1


def test_when_the_early_append_fails_the_committed_event_is_still_recorded(
    monkeypatch, django_capture_on_commit_callbacks
):
    real_append = handlers.audit_append
    calls = []

    def failing_once(*, event):
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("audit connection lost")
        return real_append(event=event)

    monkeypatch.setattr(handlers, "audit_append", failing_once)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event = LoginFailed(email="late@example.com", user_id=None)
        bus.publish(event)
        assert not AuditEntry.objects.filter(event_id=event.id).exists()

    assert AuditEntry.objects.filter(event_id=event.id).count() == 1
    assert calls == [event.id, event.id]


@pytest.mark.django_db(transaction=True)
def test_the_durable_entry_is_committed_for_every_other_connection_to_see():
    """Real commits: another client of the database sees the entry, never the event."""
    failures: list[BaseException] = []

    def request_that_fails() -> None:
        try:
            with pytest.raises(PermissionDeniedError), transaction.atomic():
                require(Actor(user_id=None, email=None), "security.audit.read")
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            connections.close_all()

    worker = threading.Thread(target=request_that_fails)
    worker.start()
    worker.join()
    assert failures == []

    with psycopg.connect(database_url_for_subprocess()) as other:
        actions = [
            row[0]
            for row in other.execute("SELECT action FROM security_auditentry ORDER BY sequence")
        ]
        outbox = other.execute(
            "SELECT count(*) FROM kernel_outboxevent WHERE name = 'security.AccessDenied'"
        ).fetchone()[0]
    assert actions == ["security.AccessDenied"]
    assert outbox == 0
