"""Helpers for the memory records tests: the embedding model taken down and brought back,
a real chat model on a loopback OpenAI server, and dated histories to import."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator

from lumina.kernel.models import OutboxEvent
from lumina.providers.api import DEFAULT_EMBEDDING_MODEL
from lumina.providers.models.registry import Deployment
from lumina.providers.selectors.registry import catalogue_clear_local
from tests.providers.factories import DeploymentFactory, ProviderFactory


@contextlib.contextmanager
def embedding_model_down() -> Iterator[None]:
    """The only embedding model disabled: every provider of it answers 503.

    Needs a transactional test: the providers' loop reads the registry on its own thread.
    """
    rows = Deployment.objects.filter(name=DEFAULT_EMBEDDING_MODEL)
    assert rows.exists(), "the local embedding model should be seeded"
    rows.update(enabled=False)
    catalogue_clear_local()
    try:
        yield
    finally:
        rows.update(enabled=True)
        catalogue_clear_local()


def chat_model_at(upstream) -> None:
    """A real chat model served by the loopback OpenAI server ``upstream``."""
    provider = ProviderFactory(base_url=upstream.url, api_key="sk-loopback")
    DeploymentFactory(provider=provider, name="loopback-chat")
    catalogue_clear_local()


def pending_events(name: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(name=name, status=OutboxEvent.Status.PENDING))


def at(year: int, month: int = 1, day: int = 1, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


# A user's history over two years: where they lived, worked, what they did when.
SESSIONS = [
    ("2023-03-10T18:00:00Z", [
        ("Sam", "I live in Lisbon and I work at Acme as a designer."),
        ("Ana", "How is the spring in Lisbon?"),
        ("Sam", "Lovely, we went hiking in Sintra and saw the Pena palace."),
    ]),
    ("2023-04-22T18:00:00Z", [
        ("Sam", "I started pottery classes, the teacher is called Rui."),
        ("Ana", "Pottery sounds relaxing."),
    ]),
    ("2023-11-05T18:00:00Z", [
        ("Sam", "Big news: I moved to Berlin for a new job."),
        ("Ana", "Berlin in winter is cold, take a good coat."),
    ]),
    ("2024-07-14T18:00:00Z", [
        ("Sam", "My dog is called Pixel, he loves the Tiergarten."),
        ("Ana", "Pixel is a great name for a dog."),
        ("Sam", "We swam in the Wannsee lake all summer."),
    ]),
]  # fmt: skip


def history_json() -> str:
    return json.dumps(
        {
            "sessions": [
                {
                    "session_id": f"s{index}",
                    "occurred_at": when,
                    "turns": [{"speaker": speaker, "text": text} for speaker, text in turns],
                }
                for index, (when, turns) in enumerate(SESSIONS, start=1)
            ]
        }
    )


def history_jsonl() -> str:
    lines = []
    for index, (when, turns) in enumerate(SESSIONS, start=1):
        start = dt.datetime.fromisoformat(when)
        for position, (speaker, text) in enumerate(turns):
            lines.append(
                json.dumps(
                    {
                        "session_id": f"s{index}",
                        "speaker": speaker,
                        "text": text,
                        "occurred_at": (start + dt.timedelta(minutes=position)).isoformat(),
                        "id": f"s{index}:{position}",
                        "topic": "life",
                    }
                )
            )
    return "\n".join(lines) + "\n"


TURNS = sum(len(turns) for _, turns in SESSIONS)
