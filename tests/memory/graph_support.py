"""Records for topic and graph tests: a small multi-session history, embedded offline.

Records are written straight into the table with the shipped MiniLM embeddings, then
announced with ``MemoryStored`` the way the records service does, so the graph and topic
handlers run as they do in production.
"""

from __future__ import annotations

import datetime as dt
import uuid

from lumina.kernel.bus import publish
from lumina.memory.events.records import MemoryStored
from lumina.memory.models.records import Layer, MemoryRecord
from lumina.providers.local.minilm import embed

START = dt.datetime(2024, 1, 10, 9, 0, tzinfo=dt.UTC)

# (session, speaker, text): Caroline talks with Melanie over four sessions.
HISTORY = [
    ("s1", "Caroline", "My sister Ana is getting married in June, I am so excited."),
    ("s1", "Melanie", "Congratulations to Ana! Where is the wedding going to be?"),
    ("s1", "Caroline", "The wedding will be at a vineyard near Porto."),
    ("s1", "Melanie", "I started a pottery class last week, the clay is so messy."),
    ("s1", "Caroline", "Pottery sounds fun, post a picture of your first bowl."),
    ("s2", "Melanie", "My pottery bowl came out of the kiln cracked."),
    ("s2", "Caroline", "Oh no! Keep trying, the glaze colours looked lovely."),
    ("s2", "Melanie", "I am training for the Berlin marathon in September."),
    ("s2", "Caroline", "How many miles are you running each week?"),
    ("s2", "Melanie", "About thirty miles, my running shoes are worn out already."),
    ("s3", "Caroline", "Ana moved to Lisbon after the wedding, she loves the city."),
    ("s3", "Melanie", "Lisbon is beautiful. Did she find a flat quickly?"),
    ("s3", "Caroline", "She rents a flat in Alfama with a view of the river."),
    ("s3", "Melanie", "The marathon went well, I finished in four hours."),
    ("s3", "Caroline", "Four hours is great for a first marathon!"),
    ("s4", "Caroline", "Ana works at Farfetch now, in their Lisbon office."),
    ("s4", "Melanie", "My dog Biscuit chewed my new running shoes."),
    ("s4", "Caroline", "Biscuit is such a rascal. Is the kiln at your studio fixed?"),
    ("s4", "Melanie", "Yes, and I glazed three mugs in the pottery studio yesterday."),
    ("s4", "Caroline", "I might visit Ana in Lisbon next spring."),
]


def store_history(owner_id: uuid.UUID, history=HISTORY, *, announce: bool = True) -> list:
    """Write the turns (a day apart, sessions a month apart) and publish MemoryStored."""
    texts = [text for _, _, text in history]
    vectors, _ = embed(texts)
    records = []
    sessions = []
    for index, ((session, speaker, text), vector) in enumerate(zip(history, vectors, strict=True)):
        if session not in sessions:
            sessions.append(session)
        occurred = START + dt.timedelta(days=30 * sessions.index(session) + index)
        records.append(
            MemoryRecord(
                owner_id=owner_id,
                session_id=session,
                layer=Layer.WORKING,
                speaker=speaker,
                text=text,
                embedding=vector.tolist(),
                occurred_at=occurred,
            )
        )
    MemoryRecord.objects.bulk_create(records)
    if announce:
        publish(
            MemoryStored(
                owner_id=owner_id,
                layer=Layer.WORKING,
                record_ids=tuple(r.id for r in records),
                session_ids=tuple(sessions),
            )
        )
    return records


def by_text(records, fragment: str):
    found = [r for r in records if fragment in r.text]
    assert len(found) == 1, fragment
    return found[0]
