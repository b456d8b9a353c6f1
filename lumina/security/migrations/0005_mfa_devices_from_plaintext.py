"""Move django-otp's plaintext devices into security's own: seeds sealed, codes hashed.

Existing databases kept TOTP seeds (hex) and backup codes in plaintext in the tables of
django-otp's ``otp_totp`` and ``otp_static`` plugins. Each device is copied with its
state (confirmed, last accepted time step, drift, throttling), its seed sealed by
envelope encryption for the new row and its codes replaced by Argon2id digests; then the
old tables are dropped, so no plaintext copy is left behind. Enrolled users keep
signing in with the same app and the same codes. A database that never had the plugins
has nothing to move.

This copies the sealing of ``services.crypto.secret_encrypt`` with the historical
``DataKey`` model and the envelope engine, without publishing an event (the bus is not
for migrations).
"""

from __future__ import annotations

import uuid

from django.db import migrations

from lumina.security.crypto import envelope, lookup, token
from lumina.security.crypto.keyring import current_keyring

LEGACY_TOTP = "otp_totp_totpdevice"
LEGACY_STATIC = "otp_static_staticdevice"
LEGACY_TOKEN = "otp_static_statictoken"  # noqa: S105 (a table name)
LEGACY_APPS = ("otp_totp", "otp_static")

_DEVICE_COLUMNS = (
    "id, user_id, name, confirmed, throttling_failure_timestamp, throttling_failure_count, "
    "created_at, last_used_at"
)


def _seal(DataKey, plaintext: str, owner: str) -> str:
    keyring = current_keyring()
    data_key = envelope.new_data_key()
    row = DataKey(id=uuid.uuid4(), owner=owner, kek_version=keyring.current_version)
    row.wrapped_key = envelope.wrap_data_key(
        data_key, kek=keyring.current_key, kek_version=row.kek_version, data_key_id=row.id
    )
    nonce, sealed = envelope.seal(
        plaintext.encode("utf-8"), data_key=data_key, aad=envelope.secret_aad(row.id, owner)
    )
    row.save(force_insert=True)
    return token.encode(token.SealedSecret(data_key_id=row.id, nonce=nonce, ciphertext=sealed))


def _device_fields(row: tuple) -> dict:
    _, user_id, name, confirmed, failed_at, failures, created_at, last_used_at = row[:8]
    return {
        "user_id": user_id,
        "name": name,
        "confirmed": confirmed,
        "throttling_failure_timestamp": failed_at,
        "throttling_failure_count": failures,
        "created_at": created_at,
        "last_used_at": last_used_at,
    }


def _move_totp(apps, cursor) -> None:
    TotpDevice = apps.get_model("security", "TotpDevice")
    DataKey = apps.get_model("security", "DataKey")
    cursor.execute(
        f"SELECT {_DEVICE_COLUMNS}, key, step, t0, digits, tolerance, drift, last_t "  # noqa: S608
        f"FROM {LEGACY_TOTP} ORDER BY id"
    )
    for row in cursor.fetchall():
        key, step, t0, digits, tolerance, drift, last_t = row[8:]
        device = TotpDevice(
            **_device_fields(row),
            step=step,
            t0=t0,
            digits=digits,
            tolerance=tolerance,
            drift=drift,
            last_t=last_t,
        )
        device.save()
        # created_at is auto_now_add: put the original time back.
        TotpDevice.objects.filter(pk=device.pk).update(
            created_at=_device_fields(row)["created_at"],
            # The owner label of models.mfa.totp_key_owner.
            sealed_key=_seal(DataKey, key.lower(), f"security.TotpDevice:{device.pk}:key"),
        )


def _move_static(apps, cursor) -> None:
    BackupCodesDevice = apps.get_model("security", "BackupCodesDevice")
    BackupCode = apps.get_model("security", "BackupCode")
    cursor.execute(f"SELECT {_DEVICE_COLUMNS} FROM {LEGACY_STATIC} ORDER BY id")  # noqa: S608
    for row in cursor.fetchall():
        salt = lookup.new_salt()
        device = BackupCodesDevice(
            **_device_fields(row), salt=salt, hash_params=lookup.DEFAULT_PARAMS
        )
        device.save()
        BackupCodesDevice.objects.filter(pk=device.pk).update(
            created_at=_device_fields(row)["created_at"]
        )
        cursor.execute(f"SELECT token FROM {LEGACY_TOKEN} WHERE device_id = %s", [row[0]])  # noqa: S608
        # Codes are compared as people type them: no spaces or dashes, lower case.
        codes = {"".join(code.split()).replace("-", "").lower() for (code,) in cursor.fetchall()}
        BackupCode.objects.bulk_create(
            BackupCode(
                device=device,
                digest=lookup.digest(code, salt=salt, params=lookup.DEFAULT_PARAMS),
            )
            for code in sorted(codes)
        )


def move_plaintext_devices(apps, schema_editor) -> None:
    connection = schema_editor.connection
    tables = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        if LEGACY_TOTP in tables:
            _move_totp(apps, cursor)
        if LEGACY_STATIC in tables and LEGACY_TOKEN in tables:
            _move_static(apps, cursor)
        cursor.execute(f"DROP TABLE IF EXISTS {LEGACY_TOKEN}, {LEGACY_STATIC}, {LEGACY_TOTP}")
        # The plugins are no longer installed; should one come back, it starts afresh.
        if "django_migrations" in tables:
            cursor.execute("DELETE FROM django_migrations WHERE app = ANY(%s)", [list(LEGACY_APPS)])


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0004_mfa_devices_sealed"),
    ]

    operations = [
        # Not reversible: going back would mean writing the seeds out in plaintext again.
        migrations.RunPython(move_plaintext_devices),
    ]
