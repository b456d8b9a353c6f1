"""Memory records written in one COPY per batch (``kernel.database.insert_rows``).

Django's ``bulk_create`` builds a multi-row INSERT and prepares every value of every field
in Python (a 384-number vector literal per row among them); COPY sends the rows as they
are. A batch of turns that collides with a concurrent import of the same turns (the
unique content hash) falls back to ``bulk_create(ignore_conflicts=True)`` inside a
savepoint, so a re-import stays a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, models, transaction

from lumina.kernel.database import insert_rows
from lumina.memory.models.records import MemoryRecord

_FIELDS = [
    field
    for field in MemoryRecord._meta.concrete_fields
    if not isinstance(field, models.GeneratedField)
]
_COLUMNS = [field.column for field in _FIELDS]


def _vector(value: Any) -> str | None:
    if value is None:
        return None
    return "[" + ",".join(map(str, map(float, value))) + "]"


def _value(field: models.Field, row: MemoryRecord) -> Any:
    value = getattr(row, field.attname)
    if field.name == "embedding":
        return _vector(value)
    if field.name == "metadata":
        return json.dumps(value if value is not None else {}, ensure_ascii=False)
    if field.name == "provenance":
        return "{" + ",".join(str(item) for item in value or ()) + "}"
    return value


def records_insert(rows: Sequence[MemoryRecord], *, ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (their ids already set) with one COPY. ``ignore_conflicts``: a row
    whose turn is already stored (another import got there first) is skipped."""
    if not rows:
        return
    values = [tuple(_value(field, row) for field in _FIELDS) for row in rows]
    table = MemoryRecord._meta.db_table
    if not ignore_conflicts:
        insert_rows(table, _COLUMNS, values)
        return
    try:
        with transaction.atomic():
            insert_rows(table, _COLUMNS, values)
    except IntegrityError:
        MemoryRecord.objects.bulk_create(rows, ignore_conflicts=True)
