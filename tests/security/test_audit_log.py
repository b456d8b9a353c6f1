"""The audit log: every security event appended to a hash chain that the database keeps
append-only and that ``audit-verify`` checks."""

import dataclasses
import threading
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connections, transaction

from lumina.kernel import bus
from lumina.kernel.models import OutboxEvent, ProcessedEvent
from lumina.security.audit_sql import (
    AUDIT_APPEND_ONLY_REVERSE_SQL,
    AUDIT_APPEND_ONLY_SQL,
    AUDIT_ROW_TRIGGER,
    AUDIT_TABLE,
)
from lumina.security.events.base import SecurityEvent
from lumina.security.handlers import subscribe_audit_log
from lumina.security.models.audit import AuditEntry
from lumina.security.routers import AUDIT_DATABASE
from lumina.security.services.audit import GENESIS_HASH, audit_append, audit_verify, entry_hash
from lumina.security.services.users import user_create


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeTouched(SecurityEvent):
    name = "testing.ProbeTouched"
    version = 1

    probe: str
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeAimed(SecurityEvent):
    """A deeper subclass with an explicit target field."""

    name = "testing.ProbeAimed"
    version = 1

    note: str
    target: str


@pytest.fixture(autouse=True)
def _audit_subscribed():
    # The test events are declared after start-up; subscribe the audit log to them too.
    subscribe_audit_log()


def test_the_sql_names_the_models_table():
    assert AuditEntry._meta.db_table == AUDIT_TABLE == "security_auditentry"


def audit_cursor():
    """A cursor on the audit chain's own connection, where every audit statement runs."""
    return connections[AUDIT_DATABASE].cursor()


@pytest.fixture
def append_only():
    """The migration's trigger (tables here come from the models, without migrations)."""
    with audit_cursor() as cursor:
        for statement in AUDIT_APPEND_ONLY_SQL:
            cursor.execute(statement)
    yield
    # Transactional tests flush tables with TRUNCATE afterwards, which the trigger refuses.
    with audit_cursor() as cursor:
        for statement in AUDIT_APPEND_ONLY_REVERSE_SQL:
            cursor.execute(statement)


def _publish(probe: str = "p", **fields) -> SecurityEvent:
    event = ProbeTouched(probe=probe, **fields)
    with transaction.atomic():
        bus.publish(event)
    return event


def _publish_committed(capture, count: int = 1) -> list[SecurityEvent]:
    with capture(execute=True):
        return [_publish(f"probe-{i}") for i in range(count)]


def _tamper(sql: str, params=()) -> None:
    with audit_cursor() as cursor:
        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {AUDIT_ROW_TRIGGER}")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {AUDIT_ROW_TRIGGER}")


@pytest.mark.django_db
def test_a_committed_security_event_is_appended_and_linked_to_the_previous(
    django_capture_on_commit_callbacks,
):
    actor = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=True):
        first = _publish("first")
        second = _publish(
            "second", actor_id=actor, ip_address="192.0.2.9", outcome="failure", extra={"n": 1}
        )
    one, two = AuditEntry.objects.order_by("sequence")
    assert (one.sequence, two.sequence) == (1, 2)
    assert one.event_id == first.id
    assert one.prev_hash == GENESIS_HASH
    assert two.prev_hash == one.hash
    assert two.event_id == second.id
    assert two.action == "testing.ProbeTouched"
    assert two.actor_id == actor
    assert two.ip_address == "192.0.2.9"
    assert two.outcome == "failure"
    assert two.target == "second"
    assert two.details == {"probe": "second", "extra": {"n": 1}}
    assert two.occurred_at == second.occurred_at
    assert two.hash == entry_hash(two)
    assert len(two.hash) == 64


@pytest.mark.django_db
def test_an_event_with_a_target_field_is_targeted_by_it(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        bus.publish(ProbeAimed(note="n", target="memory.Space:42"))
    assert AuditEntry.objects.get().target == "memory.Space:42"


@pytest.mark.django_db
def test_the_contexts_own_events_are_audited(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user = user_create(email="audited@example.com", password="a long passphrase")
    entry = AuditEntry.objects.get(action="security.UserCreated")
    assert entry.target == str(user.pk)
    assert entry.details["email"] == "audited@example.com"


@pytest.mark.django_db
def test_a_rolled_back_event_appends_nothing(django_capture_on_commit_callbacks):
    def publish_then_fail():
        with transaction.atomic():
            bus.publish(ProbeTouched(probe="never"))
            raise RuntimeError("caller failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        publish_then_fail()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_redelivery_does_not_duplicate_an_entry(django_capture_on_commit_callbacks):
    (event,) = _publish_committed(django_capture_on_commit_callbacks)
    # Lose the handler's processing record and deliver the event again.
    ProcessedEvent.objects.filter(event_id=event.id).delete()
    OutboxEvent.objects.filter(pk=event.id).update(status=OutboxEvent.Status.PENDING)
    assert bus.deliver(event.id) is not None
    assert ProcessedEvent.objects.filter(event_id=event.id).exists()
    again = audit_append(event=event)
    assert AuditEntry.objects.count() == 1
    assert again.sequence == 1


@pytest.mark.django_db
def test_common_fields_get_columns_and_addresses_are_normalised(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _publish("p", ip_address="2001:0db8:0000:0000:0000:0000:0000:0001", actor_id=None)
    entry = AuditEntry.objects.get()
    assert entry.ip_address == "2001:db8::1"
    assert "ip_address" not in entry.details
    assert "outcome" not in entry.details
    assert audit_verify().ok


@pytest.mark.django_db
def test_values_the_database_normalises_still_verify():
    odd = {"z": 1e300, "a": [1.5, "x", None], "nul": "a\x00b", "uni": "ü✓", "big": 2**70}
    audit_append(event=ProbeTouched(probe="p", ip_address="not an address", extra=odd))
    audit_append(event=ProbeTouched(probe="q", ip_address="::ffff:10.0.0.1"))
    result = audit_verify()
    assert result.ok, result.reason
    first = AuditEntry.objects.get(sequence=1)
    assert first.ip_address is None
    assert first.details["extra"]["nul"] == "a\ufffdb"


@pytest.mark.django_db
def test_update_and_delete_through_the_orm_are_refused_by_the_database(
    append_only, django_capture_on_commit_callbacks
):
    _publish_committed(django_capture_on_commit_callbacks, 2)
    entry = AuditEntry.objects.get(sequence=1)
    for attempt in (
        lambda: AuditEntry.objects.filter(sequence=1).update(target="someone else"),
        lambda: entry.save(),
        lambda: entry.delete(),
        lambda: AuditEntry.objects.all().delete(),
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(using=AUDIT_DATABASE),
        ):
            attempt()
    assert AuditEntry.objects.count() == 2
    assert AuditEntry.objects.get(sequence=1).target == "probe-0"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE security_auditentry SET outcome = 'success'",
        "DELETE FROM security_auditentry WHERE sequence = 1",
        "TRUNCATE security_auditentry",
    ],
)
def test_update_delete_and_truncate_in_raw_sql_are_refused_by_the_database(
    append_only, django_capture_on_commit_callbacks, statement
):
    _publish_committed(django_capture_on_commit_callbacks, 2)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(using=AUDIT_DATABASE),
        audit_cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AuditEntry.objects.count() == 2


@pytest.mark.django_db
def test_verify_reports_an_intact_chain_and_its_head(django_capture_on_commit_callbacks):
    assert audit_verify() == audit_verify().__class__(True, 0, None, "intact", None)
    _publish_committed(django_capture_on_commit_callbacks, 5)
    result = audit_verify(chunk_size=2)
    assert (result.ok, result.checked, result.first_broken_seq) == (True, 5, None)
    assert result.head_hash == AuditEntry.objects.get(sequence=5).hash


@pytest.mark.django_db
def test_a_tampered_row_is_found_with_its_sequence_and_the_command_fails(
    append_only, django_capture_on_commit_callbacks, capsys
):
    _publish_committed(django_capture_on_commit_callbacks, 5)
    call_command("security", "audit-verify")
    assert "5 entries checked: OK" in capsys.readouterr().out

    _tamper("UPDATE security_auditentry SET outcome = 'success', target = 'x' WHERE sequence = 3")
    result = audit_verify()
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 3, 3)
    assert "content" in result.reason
    with pytest.raises(CommandError, match="broken at entry 3") as caught:
        call_command("security", "audit-verify")
    assert caught.value.returncode == 1


@pytest.mark.django_db
def test_a_rehashed_tampered_row_breaks_the_next_link(
    append_only, django_capture_on_commit_callbacks
):
    _publish_committed(django_capture_on_commit_callbacks, 4)
    forged = AuditEntry.objects.get(sequence=2)
    forged.target = "covered up"
    _tamper(
        "UPDATE security_auditentry SET target = %s, hash = %s WHERE sequence = 2",
        [forged.target, entry_hash(forged)],
    )
    result = audit_verify()
    assert (result.ok, result.first_broken_seq) == (False, 3)
    assert "prev_hash" in result.reason


@pytest.mark.django_db
def test_a_deleted_middle_row_is_found(append_only, django_capture_on_commit_callbacks):
    _publish_committed(django_capture_on_commit_callbacks, 5)
    _tamper("DELETE FROM security_auditentry WHERE sequence = 3")
    result = audit_verify()
    assert (result.ok, result.first_broken_seq) == (False, 4)
    assert "entry 3 is missing" in result.reason
    with pytest.raises(CommandError) as caught:
        call_command("security", "audit-verify")
    assert caught.value.returncode == 1


@pytest.mark.django_db
def test_a_deleted_first_row_is_found(append_only, django_capture_on_commit_callbacks):
    _publish_committed(django_capture_on_commit_callbacks, 3)
    _tamper("DELETE FROM security_auditentry WHERE sequence = 1")
    result = audit_verify()
    assert (result.ok, result.first_broken_seq) == (False, 2)


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_two_threads_keep_the_chain_linear(append_only):
    per_thread = 15
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish_many(label: str) -> None:
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                with transaction.atomic():
                    bus.publish(ProbeTouched(probe=f"{label}-{i}"))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=publish_many, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert OutboxEvent.objects.exclude(status=OutboxEvent.Status.DELIVERED).count() == 0
    sequences = list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, 2 * per_thread + 1))
    result = audit_verify()
    assert result.ok, result.reason
    assert result.checked == 2 * per_thread
