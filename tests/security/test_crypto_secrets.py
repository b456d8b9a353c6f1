"""Envelope encryption through the public API: round trips, moved or altered ciphertexts,
unknown key versions, shredding and key rotation."""

import base64
import logging
import threading
import uuid

import pytest
from django.db import connection, transaction

from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.models import OutboxEvent
from lumina.security.api import (
    Actor,
    Decision,
    DecryptionError,
    decrypt_secret,
    encrypt_secret,
    forget_secret,
)
from lumina.security.crypto import token
from lumina.security.models.crypto import DataKey
from lumina.security.services import authorization
from lumina.security.services import crypto as crypto_services
from lumina.security.services.crypto import RotationReport, keys_rotate
from tests.security.crypto_support import key_b64, keyring, owner

pytestmark = pytest.mark.django_db

ADMIN = Actor(user_id=uuid.uuid4(), email="root@example.com", is_superuser=True)
SECRET = "sk-live-4f9a2c-very-secret"


@pytest.fixture(autouse=True)
def _keyring_v1(settings):
    settings.LUMINA_MASTER_KEYS = keyring(1)


def _failure_reasons() -> list[str]:
    rows = OutboxEvent.objects.filter(name="security.SecretDecryptionFailed").order_by("created_at")
    return [row.payload["reason"] for row in rows]


def test_a_secret_round_trips_and_each_gets_its_own_data_key():
    label = owner()
    first = encrypt_secret(SECRET, owner=label)
    second = encrypt_secret(SECRET, owner=label)
    assert first.startswith("lsec1.")
    assert first != second
    assert SECRET not in first
    assert decrypt_secret(first, owner=label, actor=ADMIN) == SECRET
    assert decrypt_secret(second, owner=label, actor=ADMIN) == SECRET
    assert DataKey.objects.filter(owner=label, kek_version=1).count() == 2


def test_unicode_and_whitespace_survive_exactly():
    label = owner()
    secret = "  pässwörd ✓ \n\t"
    assert decrypt_secret(encrypt_secret(secret, owner=label), owner=label, actor=ADMIN) == secret


def test_the_data_key_is_stored_only_wrapped():
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    row = DataKey.objects.get(owner=label)
    assert len(bytes(row.wrapped_key)) == 60  # nonce + 32-byte key + tag
    assert row.id == token.decode(ciphertext).data_key_id
    assert SECRET.encode() not in bytes(row.wrapped_key)


def test_a_ciphertext_moved_to_another_owner_does_not_decrypt():
    label, other = owner(), owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    with pytest.raises(DecryptionError) as caught:
        decrypt_secret(ciphertext, owner=other, actor=ADMIN)
    assert caught.value.code == "decryption_failed"
    assert caught.value.status == 400
    assert SECRET not in caught.value.message
    assert _failure_reasons() == ["owner_mismatch"]


def test_relabelling_the_data_key_does_not_help_a_moved_ciphertext():
    """The owner is bound cryptographically, not only by the data key's label."""
    label, other = owner(), owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    DataKey.objects.filter(owner=label).update(owner=other)
    with pytest.raises(DecryptionError):
        decrypt_secret(ciphertext, owner=other, actor=ADMIN)
    assert _failure_reasons() == ["authentication_failed"]


def test_a_wrapped_key_copied_to_another_data_key_does_not_unwrap():
    label = owner()
    first = encrypt_secret(SECRET, owner=label)
    encrypt_secret("another secret", owner=label)
    first_id = token.decode(first).data_key_id
    donor = DataKey.objects.exclude(pk=first_id).get(owner=label)
    DataKey.objects.filter(pk=first_id).update(wrapped_key=bytes(donor.wrapped_key))
    with pytest.raises(DecryptionError):
        decrypt_secret(first, owner=label, actor=ADMIN)
    assert _failure_reasons() == ["unwrap_failed"]


def _flip(ciphertext: str, index: int) -> str:
    body = ciphertext[len(token.PREFIX) :]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[index] ^= 0x01
    return token.PREFIX + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda c: _flip(c, -1), "authentication_failed"),  # the tag
        (lambda c: _flip(c, 20), "authentication_failed"),  # the nonce
        (lambda c: _flip(c, 0), "unknown_data_key"),  # the data key id
        (lambda c: c[:-30], "authentication_failed"),  # truncated
        (lambda c: c[:20], "malformed"),
        (lambda c: "lsec9." + c[6:], "malformed"),
        (lambda c: c + "*", "malformed"),
    ],
)
def test_a_tampered_ciphertext_fails_with_a_clear_error(tamper, reason):
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    with pytest.raises(DecryptionError):
        decrypt_secret(tamper(ciphertext), owner=label, actor=ADMIN)
    assert _failure_reasons() == [reason]


def test_a_data_key_under_a_kek_version_missing_from_the_keyring_fails_cleanly(settings):
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    settings.LUMINA_MASTER_KEYS = keyring(2)  # version 1 removed without rotating
    with pytest.raises(DecryptionError):
        decrypt_secret(ciphertext, owner=label, actor=ADMIN)
    assert _failure_reasons() == ["kek_unavailable"]


def test_a_kek_version_with_different_key_material_fails_cleanly(settings):
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    settings.LUMINA_MASTER_KEYS = keyring(1, fills={1: 99})
    with pytest.raises(DecryptionError):
        decrypt_secret(ciphertext, owner=label, actor=ADMIN)
    assert _failure_reasons() == ["unwrap_failed"]


def test_decrypt_is_refused_and_published_when_authorize_denies():
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    user = Actor(user_id=uuid.uuid4(), email="someone@example.com", ip_address="10.0.0.7")
    with pytest.raises(PermissionDeniedError):
        decrypt_secret(ciphertext, owner=label, actor=user)
    denied = OutboxEvent.objects.get(name="security.AccessDenied")
    assert denied.payload["action"] == "security.secrets.decrypt"
    assert denied.payload["resource_type"] == "security.secret"
    assert denied.payload["resource_id"] == label
    assert denied.payload["outcome"] == "denied"
    assert denied.payload["actor_id"] == str(user.user_id)
    assert denied.payload["ip_address"] == "10.0.0.7"
    assert not OutboxEvent.objects.filter(name="security.SecretDecrypted").exists()


def test_decrypt_asks_authorize_about_the_secret_and_the_calling_context(monkeypatch):
    asked = []

    def recording_authorize(actor, action, resource=None):
        asked.append((actor, action, resource))
        return Decision(True, action, "test")

    monkeypatch.setattr(authorization, "authorize", recording_authorize)
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    system = Actor.system("providers")
    assert decrypt_secret(ciphertext, owner=label, actor=system) == SECRET
    (actor, action, resource) = asked[0]
    assert actor is system
    assert action == "security.secrets.decrypt"
    assert resource.type == "security.secret"
    assert resource.id == label
    assert dict(resource.attributes) == {"context": "providers"}


def test_a_successful_decrypt_is_published_without_the_plaintext():
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    decrypt_secret(ciphertext, owner=label, actor=ADMIN)
    event = OutboxEvent.objects.get(name="security.SecretDecrypted")
    assert event.payload["owner"] == label
    assert event.payload["actor_id"] == str(ADMIN.user_id)
    assert event.payload["data_key_id"] == str(token.decode(ciphertext).data_key_id)
    for row in OutboxEvent.objects.all():
        assert SECRET not in str(row.payload)
        assert ciphertext not in str(row.payload)


def test_bad_owner_and_oversized_plaintext_are_refused_naming_the_field():
    with pytest.raises(crypto_services.ApplicationError) as caught:
        encrypt_secret(SECRET, owner="has spaces")
    assert list(caught.value.fields) == ["owner"]
    with pytest.raises(crypto_services.ApplicationError) as caught:
        encrypt_secret("x" * (64 * 1024 + 1), owner=owner())
    assert list(caught.value.fields) == ["plaintext"]
    with pytest.raises(crypto_services.ApplicationError) as caught:
        encrypt_secret("\ud800", owner=owner())
    assert list(caught.value.fields) == ["plaintext"]
    assert encrypt_secret("x" * (64 * 1024), owner=owner()).startswith("lsec1.")
    assert not DataKey.objects.filter(owner="has spaces").exists()


def test_forgetting_an_owner_shreds_its_secrets():
    label, other = owner(), owner()
    ciphertexts = [encrypt_secret(SECRET, owner=label) for _ in range(2)]
    kept = encrypt_secret(SECRET, owner=other)
    assert forget_secret(label) == 2
    for ciphertext in ciphertexts:
        with pytest.raises(DecryptionError):
            decrypt_secret(ciphertext, owner=label, actor=ADMIN)
    assert decrypt_secret(kept, owner=other, actor=ADMIN) == SECRET
    assert forget_secret(label) == 0
    assert OutboxEvent.objects.get(name="security.SecretsForgotten").payload["data_keys"] == 2


def test_forgetting_one_ciphertext_leaves_the_owners_others_and_never_anothers():
    label, other = owner(), owner()
    old, new = encrypt_secret("old", owner=label), encrypt_secret("new", owner=label)
    foreign = encrypt_secret(SECRET, owner=other)
    assert forget_secret(label, ciphertext=foreign) == 0  # not this owner's key
    assert forget_secret(label, ciphertext=old) == 1
    assert decrypt_secret(new, owner=label, actor=ADMIN) == "new"
    assert decrypt_secret(foreign, owner=other, actor=ADMIN) == SECRET
    with pytest.raises(DecryptionError):
        decrypt_secret(old, owner=label, actor=ADMIN)


def test_rotation_rewraps_under_the_new_kek_and_old_ciphertexts_still_decrypt(settings):
    labels = [owner() for _ in range(5)]
    ciphertexts = [encrypt_secret(f"{SECRET}-{i}", owner=label) for i, label in enumerate(labels)]
    before = {row.id: bytes(row.wrapped_key) for row in DataKey.objects.all()}

    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    fresh = encrypt_secret("made after the new key", owner=labels[0])
    report = keys_rotate(batch_size=2)
    assert report == RotationReport(kek_version=2, total=6, rewrapped=5, already_current=1)
    for row in DataKey.objects.filter(pk__in=before):
        assert row.kek_version == 2
        assert row.rotated_at is not None
        assert bytes(row.wrapped_key) != before[row.id]

    again = keys_rotate()
    assert (again.rewrapped, again.already_current, again.total) == (0, 6, 6)

    settings.LUMINA_MASTER_KEYS = keyring(2)  # the old KEK can go once everything is rotated
    for i, (label, ciphertext) in enumerate(zip(labels, ciphertexts, strict=True)):
        assert decrypt_secret(ciphertext, owner=label, actor=ADMIN) == f"{SECRET}-{i}"
    assert decrypt_secret(fresh, owner=labels[0], actor=ADMIN) == "made after the new key"


def test_rotation_reports_keys_under_a_missing_kek_version_instead_of_crashing(settings):
    settings.LUMINA_MASTER_KEYS = keyring(1)
    lost = owner()
    encrypt_secret(SECRET, owner=lost)
    settings.LUMINA_MASTER_KEYS = keyring(2)
    encrypt_secret(SECRET, owner=owner())
    settings.LUMINA_MASTER_KEYS = keyring(2, 3)
    report = keys_rotate()
    assert report.total == 2
    assert report.rewrapped == 1
    assert report.unavailable == 1
    assert report.unavailable_versions == (1,)
    assert DataKey.objects.get(owner=lost).kek_version == 1


def test_rotation_counts_keys_that_no_longer_unwrap_as_failed(settings):
    encrypt_secret(SECRET, owner=owner())
    settings.LUMINA_MASTER_KEYS = keyring(1, 2, fills={1: 77})
    report = keys_rotate()
    assert (report.failed, report.rewrapped) == (1, 0)
    assert keys_rotate().failed == 1  # left as it was, reported again


def test_rotation_is_published_as_an_event(settings):
    encrypt_secret(SECRET, owner=owner())
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    report = keys_rotate(actor=ADMIN)
    event = OutboxEvent.objects.get(name="security.KeysRotated")
    assert event.payload["rewrapped"] == report.rewrapped == 1
    assert event.payload["actor_id"] == str(ADMIN.user_id)


def test_no_plaintext_or_key_material_reaches_the_logs(settings, caplog):
    caplog.set_level(logging.DEBUG)
    label = owner()
    ciphertext = encrypt_secret(SECRET, owner=label)
    decrypt_secret(ciphertext, owner=label, actor=ADMIN)
    with pytest.raises(DecryptionError):
        decrypt_secret(ciphertext, owner=owner(), actor=ADMIN)
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    keys_rotate()
    assert caplog.records  # the operations do log
    assert SECRET not in caplog.text
    assert key_b64(1) not in caplog.text
    assert key_b64(2) not in caplog.text
    assert ciphertext not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_rotation_is_online_skipping_keys_another_transaction_holds(settings):
    settings.LUMINA_MASTER_KEYS = keyring(1)
    labels = [owner() for _ in range(3)]
    for label in labels:
        encrypt_secret(SECRET, owner=label)
    busy = DataKey.objects.get(owner=labels[0])
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)

    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                DataKey.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        report = keys_rotate()
    finally:
        release.set()
        holder.join()
    assert (report.rewrapped, report.skipped) == (2, 1)
    assert DataKey.objects.get(pk=busy.pk).kek_version == 1
    assert keys_rotate().rewrapped == 1
    assert set(DataKey.objects.values_list("kek_version", flat=True)) == {2}
