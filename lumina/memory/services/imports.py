"""Bulk import of conversation histories (JSON or JSONL) and their export.

JSON: an object ``{"sessions": [...], "turns": [...]}`` (either or both) or a list of
sessions and turns. JSONL: one session or turn per line. A session is an object with
``turns`` (or ``messages``) and may carry ``session_id``, ``agent_id``, ``occurred_at``
(its turns inherit it, one second apart, when they carry none) and ``metadata`` (merged
under each turn's). A turn has ``text`` (or ``content``) and may carry ``speaker`` (or
``role``), ``occurred_at`` (or ``timestamp``), ``session_id``, ``agent_id``, ``id``,
``importance`` and ``metadata``; any other scalar field is kept in its metadata.

The whole file is checked before anything is stored: the first bad line (JSONL) or item
(JSON) is refused with a 400 naming it, and nothing is imported. Re-importing a file adds
nothing (content hashes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.db import connection

from lumina.memory.errors import InvalidInputError
from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.records_types import ImportResult
from lumina.memory.selectors.record_access import READ, WRITE, owner_resolve
from lumina.memory.services.records import TurnInput, turn_check, turns_store
from lumina.security.api import Actor

JSON, JSONL = "json", "jsonl"
FORMATS = (JSON, JSONL)
MAX_TURNS = 100_000
# An import this large is followed by ANALYZE and a merge of the GIN indexes' pending
# lists: until autovacuum's next look (a minute or more on a busy server) the planner has
# no statistics for the new rows and walks an owner's b-tree for every search instead of
# the GIN and HNSW indexes, and every text search scans the new rows' unsorted lexemes.
ANALYZE_AFTER = 500
TEXT_KEYS = ("text", "content")
SPEAKER_KEYS = ("speaker", "role")
TIME_KEYS = ("occurred_at", "timestamp")
SESSION_TIME_KEYS = ("occurred_at", "date_time", "date", "timestamp")
TURN_LIST_KEYS = ("turns", "messages")
KNOWN_TURN_KEYS = frozenset(
    {*TEXT_KEYS, *SPEAKER_KEYS, *TIME_KEYS, "session_id", "session", "agent_id", "id",
     "importance", "metadata", "layer", "valid_from", "valid_to", "superseded_at"}
)  # fmt: skip


class ImportFileError(InvalidInputError):
    """One line or item of an import file is unusable; ``field`` names where."""

    code = "invalid_import"

    def __init__(self, where: str, message: str) -> None:
        super().__init__(where, f"{where}: {message}")


def parse_time(value: Any, *, field: str) -> dt.datetime:
    """ISO 8601 first; numbers are Unix seconds; other text is read by dateparser ("1:56 pm
    on 8 May, 2023"). Times without a zone are UTC."""
    if isinstance(value, bool):
        raise InvalidInputError(field, "Not a date and time.")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 253402300800:
            raise InvalidInputError(field, "Not a Unix time in seconds.")
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise InvalidInputError(field, "Not a date and time.")
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        import dateparser

        try:
            parsed = dateparser.parse(
                text,
                languages=["en"],
                settings={"RETURN_AS_TIMEZONE_AWARE": False, "PREFER_DATES_FROM": "past"},
            )
        except (ValueError, OverflowError, TypeError, ArithmeticError):
            parsed = None
        if parsed is None:
            raise InvalidInputError(field, f"Not a date and time: {value!r}.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


@dataclasses.dataclass
class _Session:
    session_id: str = ""
    agent_id: str = ""
    occurred_at: dt.datetime | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in item:
            return item[key]
    return None


def _string(value: Any, *, field: str, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(field, "Must be a string.")


def _turn(
    item: Any, *, session: _Session, position: int, defaults: _Session, where: str
) -> TurnInput:
    if not isinstance(item, dict):
        raise ImportFileError(where, "a turn must be a JSON object.")
    try:
        text = _first(item, TEXT_KEYS)
        if not isinstance(text, str):
            raise InvalidInputError("text", "Each turn needs its text (a string).")
        when = _first(item, TIME_KEYS)
        try:
            occurred_at = (
                parse_time(when, field="occurred_at")
                if when is not None
                else session.occurred_at + dt.timedelta(seconds=position)
                if session.occurred_at is not None
                else None
            )
        except OverflowError:
            raise InvalidInputError("occurred_at", "Past the end of the calendar.") from None
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidInputError("metadata", "The metadata must be a JSON object.")
        extra = {
            key: value
            for key, value in item.items()
            if key not in KNOWN_TURN_KEYS
            and (value is None or isinstance(value, str | int | float | bool))
        }
        importance = item.get("importance")
        if importance is not None and (
            isinstance(importance, bool) or not isinstance(importance, int | float)
        ):
            raise InvalidInputError("importance", "A number between 0 and 1.")
        turn = TurnInput(
            text=text,
            speaker=_string(_first(item, SPEAKER_KEYS), field="speaker"),
            occurred_at=occurred_at,
            metadata={**session.metadata, **extra, **metadata},
            session_id=_string(
                item.get("session_id", item.get("session")),
                field="session_id",
                default=session.session_id or defaults.session_id,
            ),
            agent_id=_string(
                item.get("agent_id"),
                field="agent_id",
                default=session.agent_id or defaults.agent_id,
            ),
            external_id=_string(item.get("id"), field="id")[:200],
            importance=float(importance) if importance is not None else None,
            position=position,
        )
        turn_check(turn)
    except ImportFileError:
        raise
    except InvalidInputError as error:
        raise ImportFileError(f"{where}.{error.field}", error.message) from None
    return turn


def _session(item: dict[str, Any], *, defaults: _Session, where: str) -> _Session:
    try:
        when = _first(item, SESSION_TIME_KEYS)
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidInputError("metadata", "The metadata must be a JSON object.")
        return _Session(
            session_id=_string(
                item.get("session_id", item.get("id")), field="session_id", default=""
            )[:200]
            or defaults.session_id,
            agent_id=_string(item.get("agent_id"), field="agent_id", default=defaults.agent_id),
            occurred_at=parse_time(when, field="occurred_at") if when is not None else None,
            metadata=metadata,
        )
    except InvalidInputError as error:
        raise ImportFileError(f"{where}.{error.field}", error.message) from None


def _entries(item: Any, *, defaults: _Session, where: str, positions: dict) -> Iterator[TurnInput]:
    """The turns of one session or turn object (a bare list of turns is a session)."""
    if isinstance(item, list):
        item = {"turns": item}
    if not isinstance(item, dict):
        raise ImportFileError(where, "expected a session or turn object.")
    turns = _first(item, TURN_LIST_KEYS)
    if item.get("layer", Layer.WORKING) != Layer.WORKING:
        return  # an exported fact: facts are extracted again from the turns
    if turns is None:
        session_id = _string(item.get("session_id", item.get("session")), field="session_id")
        position = positions.get(session_id, 0)
        positions[session_id] = position + 1
        yield _turn(item, session=_Session(), position=position, defaults=defaults, where=where)
        return
    if not isinstance(turns, list):
        raise ImportFileError(f"{where}.turns", "must be a list of turns.")
    session = _session(item, defaults=defaults, where=where)
    start = positions.get(session.session_id, 0)
    positions[session.session_id] = start + len(turns)
    for index, turn in enumerate(turns):
        yield _turn(
            turn,
            session=session,
            position=start + index,
            defaults=defaults,
            where=f"{where}.turns[{index}]",
        )


def import_parse(
    text: str, *, fmt: str, agent_id: str = "", session_id: str = ""
) -> tuple[list[TurnInput], int]:
    """Every turn of the file, checked, and the number of sessions; or ``ImportFileError``."""
    if fmt not in FORMATS:
        raise InvalidInputError("format", "One of json, jsonl.")
    defaults = _Session(session_id=session_id, agent_id=agent_id)
    positions: dict[str, int] = {}
    turns: list[TurnInput] = []
    if fmt == JSONL:
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ImportFileError(
                    where, f"not JSON ({error.msg}, column {error.colno})."
                ) from None
            turns.extend(_entries(item, defaults=defaults, where=where, positions=positions))
            if len(turns) > MAX_TURNS:
                raise ImportFileError(where, f"more than {MAX_TURNS} turns in one import.")
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportFileError(
                f"line {error.lineno}", f"not JSON ({error.msg}, column {error.colno})."
            ) from None
        if isinstance(document, dict):
            if not any(key in document for key in ("sessions", *TURN_LIST_KEYS)):
                raise ImportFileError("body", "expected 'sessions' or 'turns'.")
            defaults = _session(document, defaults=defaults, where="body")
            defaults = dataclasses.replace(defaults, metadata={}, occurred_at=None)
            items = []
            sessions = document.get("sessions", [])
            if not isinstance(sessions, list):
                raise ImportFileError("sessions", "must be a list of sessions.")
            items += [(f"sessions[{i}]", item) for i, item in enumerate(sessions)]
            loose = _first(document, TURN_LIST_KEYS) or []
            if not isinstance(loose, list):
                raise ImportFileError("turns", "must be a list of turns.")
            items += [(f"turns[{i}]", item) for i, item in enumerate(loose)]
        elif isinstance(document, list):
            items = [(f"[{i}]", item) for i, item in enumerate(document)]
        else:
            raise ImportFileError("body", "expected an object or a list.")
        for where, item in items:
            turns.extend(_entries(item, defaults=defaults, where=where, positions=positions))
            if len(turns) > MAX_TURNS:
                raise ImportFileError(where, f"more than {MAX_TURNS} turns in one import.")
    if not turns:
        raise ImportFileError("body", "the file holds no turns.")
    return turns, len({turn.session_id for turn in turns})


def records_import(
    *,
    actor: Actor,
    text: str,
    fmt: str,
    user_id: uuid.UUID | None = None,
    agent_id: str = "",
    session_id: str = "",
) -> ImportResult:
    """Import a history: all of it or (on a bad line) nothing. When the embedding model is
    down the turns are kept and finished through the outbox (``embedding: pending``)."""
    owner_id = owner_resolve(actor, action=WRITE, user_id=user_id)
    turns, sessions = import_parse(text, fmt=fmt, agent_id=agent_id, session_id=session_id)
    outcome = turns_store(
        owner_id=owner_id,
        turns=turns,
        actor_id=actor.user_id,
        keep_when_unembedded=True,
        index_graph=True,
    )
    if len(outcome.created) >= ANALYZE_AFTER:
        _settle_indexes()
    return ImportResult(
        imported=len(outcome.created),
        skipped=len(turns) - len(outcome.created),
        sessions=sessions,
        facts=sum(1 for decision in outcome.facts if decision.decision != "noop"),
        embedding="pending" if outcome.pending else "done",
        record_ids=tuple(row.id for row in outcome.created),
    )


def _settle_indexes() -> None:
    """Statistics for the new rows, and their GIN entries merged into the indexes proper.

    A GIN index takes new entries into a pending list, which every search through it
    reads whole until vacuum merges it. After 10,000 turns the text index's list held
    166 pages, and text searches took 13.7 ms instead of 8.3 until it was merged (31 ms)."""
    gin = [index.name for index in MemoryRecord._meta.indexes if isinstance(index, GinIndex)]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {MemoryRecord._meta.db_table}")
        for name in gin:
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])


def records_export(
    *, actor: Actor, user_id: uuid.UUID | None = None, include_facts: bool = True
) -> Iterator[str]:
    """The owner's turns (and, with ``include_facts``, facts) as JSONL lines that
    ``records_import`` reads back (it skips the facts: they are extracted again)."""
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    layers = [Layer.WORKING, Layer.SEMANTIC] if include_facts else [Layer.WORKING]
    rows = (
        MemoryRecord.objects.filter(owner_id=owner_id, layer__in=layers)
        .order_by("layer", "session_id", "occurred_at", "recorded_at")
        .iterator(chunk_size=2000)
    )
    for row in rows:
        line: dict[str, Any] = {
            "text": row.text,
            "speaker": row.speaker,
            "occurred_at": row.occurred_at.isoformat(),
            "session_id": row.session_id,
            "agent_id": row.agent_id,
            "metadata": row.metadata,
            "importance": row.importance,
        }
        if row.external_id:
            line["id"] = row.external_id
        if row.layer == Layer.SEMANTIC:
            line["layer"] = row.layer
            line["valid_from"] = row.valid_from.isoformat() if row.valid_from else None
            line["valid_to"] = row.valid_to.isoformat() if row.valid_to else None
            line["superseded_at"] = row.superseded_at.isoformat() if row.superseded_at else None
        yield json.dumps(line, ensure_ascii=False)
