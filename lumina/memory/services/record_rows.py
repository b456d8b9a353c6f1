"""Memory records written in one binary COPY per batch (``kernel.database.insert_rows``).

Django's ``bulk_create`` builds a multi-row INSERT and prepares every value of every field
in Python (a 384-number vector literal per row among them); COPY sends the rows as they
are, and in its binary format a vector is its 384 floats, which PostgreSQL reads without
parsing. A batch of turns that collides with a concurrent import of the same turns (the
unique content hash) falls back to ``bulk_create(ignore_conflicts=True)`` inside a
savepoint, so a re-import stays a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import IntegrityError, models, transaction
from pgvector.django import VectorField
from psycopg.types.json import Jsonb

from lumina.kernel.database import insert_rows
from lumina.memory.models.records import MemoryRecord

_FIELDS = [
    field
    for field in MemoryRecord._meta.concrete_fields
    if not isinstance(field, models.GeneratedField)
]
_COLUMNS = [field.column for field in _FIELDS]
# COPY's binary format needs each column's type: the types of the fields the model uses.
_TYPES = {
    "UUIDField": "uuid",
    "CharField": "text",
    "TextField": "text",
    "DateTimeField": "timestamptz",
    "FloatField": "float8",
    "BooleanField": "bool",
    "IntegerField": "int4",
}


def _type(field: models.Field) -> str:
    if isinstance(field, VectorField):
        return "vector"
    if isinstance(field, models.JSONField):
        return "jsonb"
    if isinstance(field, ArrayField):
        return f"{_type(field.base_field)}[]"
    if isinstance(field, models.ForeignKey):
        return _type(field.target_field)
    return _TYPES[field.get_internal_type()]  # a new kind of field: add its type here


_COLUMN_TYPES = [_type(field) for field in _FIELDS]


def _value(field: models.Field, row: MemoryRecord) -> Any:
    value = getattr(row, field.attname)
    if field.name == "metadata":
        return Jsonb(value if value is not None else {})
    if field.name == "provenance":
        return list(value or ())
    return value


def records_insert(rows: Sequence[MemoryRecord], *, ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (their ids already set) with one COPY. ``ignore_conflicts``: a row
    whose turn is already stored (another import got there first) is skipped."""
    if not rows:
        return
    values = [tuple(_value(field, row) for field in _FIELDS) for row in rows]
    table = MemoryRecord._meta.db_table
    if not ignore_conflicts:
        insert_rows(table, _COLUMNS, values, types=_COLUMN_TYPES)
        return
    try:
        with transaction.atomic():
            insert_rows(table, _COLUMNS, values, types=_COLUMN_TYPES)
    except IntegrityError:
        MemoryRecord.objects.bulk_create(rows, ignore_conflicts=True)
