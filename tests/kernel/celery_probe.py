"""An event and handler that a Celery worker subprocess imports (``--include``) in tests."""

import dataclasses
import os
from pathlib import Path

from lumina.kernel.bus import subscribe
from lumina.kernel.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeSent(DomainEvent):
    name = "probe.ProbeSent"
    version = 1

    path: str
    text: str


@subscribe(ProbeSent)
def write_probe(event: ProbeSent) -> None:
    # Appending lets the test see a duplicate delivery as a second line.
    with Path(event.path).open("a") as handle:
        handle.write(f"{event.text} pid={os.getpid()}\n")
