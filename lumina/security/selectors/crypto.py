"""Envelope encryption reads: which KEK versions exist and how many data keys each wraps."""

from __future__ import annotations

import dataclasses

from django.db.models import Count

from lumina.security.crypto.keyring import current_keyring
from lumina.security.models.crypto import DataKey


@dataclasses.dataclass(frozen=True)
class KeyVersionUsage:
    kek_version: int
    data_keys: int
    # False when data keys are wrapped by a version no longer in the keyring.
    in_keyring: bool
    current: bool


@dataclasses.dataclass(frozen=True)
class KeyringSummary:
    """Versions only: key material never leaves the keyring."""

    current_version: int
    versions: tuple[int, ...]
    usage: tuple[KeyVersionUsage, ...]


def keyring_summary() -> KeyringSummary:
    keyring = current_keyring()
    counts = dict(DataKey.objects.order_by().values_list("kek_version").annotate(n=Count("id")))
    usage = tuple(
        KeyVersionUsage(
            kek_version=version,
            data_keys=counts.get(version, 0),
            in_keyring=version in keyring,
            current=version == keyring.current_version,
        )
        for version in sorted(set(keyring.versions) | set(counts))
    )
    return KeyringSummary(
        current_version=keyring.current_version, versions=keyring.versions, usage=usage
    )
