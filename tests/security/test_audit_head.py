"""The audit chain's signed head: exported periodically and on demand, it exposes the removal
of the newest entries, which the chain alone cannot show; a forged head is refused."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, transaction

from lumina.kernel import bus
from lumina.kernel.relay import run_due_jobs
from lumina.security import tasks
from lumina.security.audit_sql import (
    AUDIT_APPEND_ONLY_SQL,
    AUDIT_ROW_TRIGGER,
    AUDIT_TABLE,
    AUDIT_TRUNCATE_TRIGGER,
)
from lumina.security.events.auth import LoginFailed
from lumina.security.models.audit import AuditEntry
from lumina.security.routers import AUDIT_DATABASE
from lumina.security.services.audit import GENESIS_HASH, audit_verify, entry_hash
from lumina.security.services.audit_head import (
    HEAD_FORMAT,
    HeadError,
    audit_head_current,
    audit_head_parse,
)
from tests.security.crypto_support import keyring

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keys(settings):
    settings.LUMINA_MASTER_KEYS = keyring(1)


@pytest.fixture
def head_file(tmp_path):
    return tmp_path / "heads.jsonl"


def append_entries(count: int) -> None:
    # Login failures are durable: appended to the chain as they are published.
    for i in range(count):
        with transaction.atomic():
            bus.publish(LoginFailed(email=f"guess-{i}@example.com", user_id=None))


def as_database_superuser(*statements: str) -> None:
    """What someone holding the database's superuser can do: switch the triggers off."""
    with connections[AUDIT_DATABASE].cursor() as cursor:
        # The migration's triggers (a test database made without migrations lacks them).
        for statement in AUDIT_APPEND_ONLY_SQL:
            cursor.execute(statement)
        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {AUDIT_ROW_TRIGGER}")
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {AUDIT_ROW_TRIGGER}")


def verify_against(path) -> str:
    from io import StringIO

    out = StringIO()
    call_command("security", "audit-verify", "--against", str(path), stdout=out)
    return out.getvalue()


def refused_against(path) -> CommandError:
    with pytest.raises(CommandError) as caught:
        verify_against(path)
    assert caught.value.returncode == 1
    return caught.value


def test_audit_head_signs_the_newest_entry_and_appends_it_to_the_file(head_file, capsys):
    append_entries(3)

    call_command("security", "audit-head", "--output", str(head_file))

    printed = json.loads(capsys.readouterr().out)
    (line,) = head_file.read_text().splitlines()
    assert json.loads(line) == printed
    newest = AuditEntry.objects.get(sequence=3)
    assert printed["format"] == HEAD_FORMAT
    assert (printed["sequence"], printed["hash"]) == (3, newest.hash)
    assert printed["key_version"] == 1
    assert len(printed["signature"]) == 64
    assert "3 entries checked: OK" in verify_against(head_file)


def test_an_empty_chain_has_a_head_too():
    head = audit_head_current()
    assert (head.sequence, head.hash, head.recorded_at) == (0, GENESIS_HASH, None)
    assert audit_head_parse(head.as_dict()) == head


def test_removing_the_newest_entries_is_found_against_an_exported_head(head_file):
    append_entries(5)
    call_command("security", "audit-head", "--output", str(head_file))

    as_database_superuser(f"DELETE FROM {AUDIT_TABLE} WHERE sequence > 3")  # noqa: S608

    # The shortened chain is intact in itself: only the head shows what is gone.
    assert audit_verify().ok
    assert audit_verify().checked == 3
    error = refused_against(head_file)
    assert "ends at entry 3" in str(error)
    assert "names entry 5" in str(error)


def test_truncating_the_whole_chain_is_found_against_an_exported_head(head_file):
    append_entries(2)
    call_command("security", "audit-head", "--output", str(head_file))
    with connections[AUDIT_DATABASE].cursor() as cursor:
        # The test database already lets TRUNCATE through (tests/conftest.py), as a
        # superuser could: prove it, then empty the table.
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = %s", [AUDIT_TRUNCATE_TRIGGER]
        )
        assert cursor.fetchone() in (None, ("D",))
        cursor.execute(f"TRUNCATE {AUDIT_TABLE}")

    assert audit_verify().ok
    assert "ends at entry 0" in str(refused_against(head_file))


def test_a_rewritten_newest_entry_is_found_against_an_exported_head(head_file):
    append_entries(4)
    call_command("security", "audit-head", "--output", str(head_file))
    forged = AuditEntry.objects.get(sequence=4)
    forged.target = "someone else"
    as_database_superuser(
        f"UPDATE {AUDIT_TABLE} SET target = 'someone else', "  # noqa: S608
        f"hash = '{entry_hash(forged)}' WHERE sequence = 4"
    )

    assert audit_verify().ok  # rehashed: the chain alone cannot tell
    assert "entry 4 differs" in str(refused_against(head_file))


def test_a_head_with_a_changed_field_is_refused_as_forged(head_file):
    append_entries(2)
    head = audit_head_current().as_dict()
    head["sequence"] = 1  # an attacker trimming entry 2 and editing the head to match
    head_file.write_text(json.dumps(head) + "\n")

    error = refused_against(head_file)

    assert "untrusted head file" in str(error)
    assert "signature does not match" in str(error)


def test_a_head_signed_with_another_key_is_refused(head_file, settings):
    append_entries(1)
    settings.LUMINA_MASTER_KEYS = keyring(1, fills={1: 0x42})  # not Lumina's key
    forged = audit_head_current()
    settings.LUMINA_MASTER_KEYS = keyring(1)
    head_file.write_text(forged.to_json() + "\n")

    assert "signature does not match" in str(refused_against(head_file))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "line 1: not JSON"),
        ('{"sequence": 1}\n', "fields are missing"),
        ("\n", "no audit head"),
    ],
)
def test_a_head_file_that_is_not_one_is_refused(head_file, content, message):
    head_file.write_text(content)
    assert message in str(refused_against(head_file))


def test_any_forged_line_among_good_ones_fails_the_file(head_file):
    append_entries(1)
    call_command("security", "audit-head", "--output", str(head_file))
    forged = audit_head_current().as_dict() | {"signature": "0" * 64}
    with head_file.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    assert "line 2" in str(refused_against(head_file))


def test_heads_signed_before_a_key_rotation_verify_while_their_key_is_kept(head_file, settings):
    append_entries(1)
    call_command("security", "audit-head", "--output", str(head_file))

    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    assert "OK" in verify_against(head_file)
    assert audit_head_current().key_version == 2

    settings.LUMINA_MASTER_KEYS = keyring(2)
    assert "key version 1, which is not in the keyring" in str(refused_against(head_file))


def test_a_logged_head_line_is_accepted_as_a_head(head_file):
    """The log sink's JSON lines carry the head's fields beside structlog's own."""
    append_entries(1)
    head = audit_head_current()
    logged = {"event": "audit head", "logger": "lumina.security.audit.head", "level": "info"}
    head_file.write_text(json.dumps(logged | head.as_dict()) + "\n")
    assert "consistent with 1 exported head" in verify_against(head_file)


def test_the_relay_thread_and_the_beat_task_export_the_head(settings, tmp_path):
    settings.LUMINA_AUDIT_HEAD_FILE = tmp_path / "periodic.jsonl"
    append_entries(2)

    assert "security.audit-head" in run_due_jobs(now=float("inf"))
    assert tasks.export_audit_head() == 2

    lines = settings.LUMINA_AUDIT_HEAD_FILE.read_text().splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [2, 2]
    assert "export-audit-head" in settings.CELERY_BEAT_SCHEDULE
    for line in lines:
        audit_head_parse(json.loads(line))


def test_parse_refuses_a_boolean_sequence():
    head = audit_head_current().as_dict() | {"sequence": True}
    with pytest.raises(HeadError, match="malformed"):
        audit_head_parse(head)
