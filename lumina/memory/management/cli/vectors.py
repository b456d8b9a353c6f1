"""``memory reembed|reindex COLLECTION`` and the collections' part of ``memory stats``.

COLLECTION is a collection's id, or a name that only one owner uses.
"""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from lumina.kernel.errors import ApplicationError
from lumina.memory.models.vectors import Collection
from lumina.memory.selectors.vectors import collection_stats
from lumina.memory.services.vectors import collection_reembed, collection_reindex
from lumina.security.api import Actor

CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    reembed = commands.add_parser(
        "reembed",
        help="Move a collection to another embedding model in resumable batches; "
        "searches keep reading the old vectors until every record has a new one.",
    )
    reembed.add_argument("collection", help="The collection's id, or a name unique across owners.")
    reembed.add_argument("--model", required=True, help="The embedding model to move to.")
    reembed.add_argument("--batch-size", type=int, default=64, help="Texts per embedding call.")
    reembed.add_argument(
        "--max-batches", type=int, default=None, help="Stop after this many (resume later)."
    )
    reembed.set_defaults(handler=run_reembed)

    reindex = commands.add_parser(
        "reindex", help="Rebuild a collection's HNSW index (concurrently: writes go on)."
    )
    reindex.add_argument("collection", help="The collection's id, or a name unique across owners.")
    reindex.set_defaults(handler=run_reindex)


def collection_id(ref: str) -> uuid.UUID:
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    found = list(Collection.objects.filter(name=ref).values_list("id", flat=True)[:2])
    if not found:
        raise CommandError(f"No collection named {ref!r}.")
    if len(found) > 1:
        raise CommandError(f"Several owners have a collection named {ref!r}: give its id.")
    return found[0]


def run_reembed(command, *, collection, model, batch_size, max_batches, **_) -> None:
    def progress(done: int, remaining: int) -> None:
        command.stdout.write(f"{done} embedded, {remaining} to go")

    try:
        info = collection_reembed(
            actor=CLI_ACTOR,
            ref=collection_id(collection),
            model=model,
            batch_size=batch_size,
            max_batches=max_batches,
            progress=progress,
        )
    except ApplicationError as error:
        raise CommandError(f"{error.message} {error.fields or ''}".strip()) from error
    if info.reembedding_to:
        command.stdout.write(
            f"Stopped part way: run the same command again to go on moving to {model!r}."
        )
    else:
        command.stdout.write(
            f"{info.name}: searches now use {info.embedding_model} ({info.dimension} dimensions)."
        )


def run_reindex(command, *, collection, **_) -> None:
    try:
        info = collection_reindex(actor=CLI_ACTOR, ref=collection_id(collection))
    except ApplicationError as error:
        raise CommandError(error.message) from error
    command.stdout.write(f"{info.name}: index rebuilt over {info.record_count} records.")


def stats_lines() -> list[str]:
    rows = collection_stats()
    lines = [f"Vector collections: {len(rows)}"]
    for row in rows:
        size = "no index" if row["index_bytes"] is None else f"index {row['index_bytes']:,} bytes"
        line = (
            f"  {row['name']} ({row['id']}): {row['records']:,} records, {row['model'] or '-'}"
            f" {row['dimension']}-d {row['distance']}, {size}"
        )
        if row["reembedding_to"]:
            line += f"; re-embedding to {row['reembedding_to']}, {row['reembed_remaining']} to go"
        lines.append(line)
    return lines
