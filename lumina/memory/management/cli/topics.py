"""``memory topics extract|rebuild`` and the topics' lines of ``memory stats``.

``extract`` clusters one scope's records into topics now; ``rebuild`` drops a user's (or
everyone's) entity graph and reads it again from their records, the way the handlers
built it. The CLI acts as the system actor; a user's memory is named with ``--user``.
"""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from lumina.kernel.errors import ApplicationError
from lumina.memory.models.topics import Entity, Relation, Topic, TopicScope
from lumina.memory.services.graph import graph_rebuild
from lumina.memory.services.topics import topics_extract
from lumina.security.api import Actor

CLI_ACTOR = Actor.system("cli")


def _user(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"--user: {value!r} is not a user id (UUID)") from None


def register(commands) -> None:
    topics = commands.add_parser("topics", help="Topics and the entity graph.")
    actions = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    extract = actions.add_parser("extract", help="Cluster a scope's records into topics now.")
    extract.add_argument("--user", required=True, help="Whose memory (user id).")
    extract.add_argument("--scope", choices=TopicScope.values, default=TopicScope.USER)
    extract.add_argument("--key", default="", help="The agent, session or collection name.")
    extract.set_defaults(handler=extract_topics)
    rebuild = actions.add_parser(
        "rebuild", help="Read the entity graph again from the records (drops the old one)."
    )
    rebuild.add_argument("--user", help="Only this user's graph (default everyone's).")
    rebuild.set_defaults(handler=rebuild_graph)


def extract_topics(command, *, user, scope, key, **_) -> None:
    try:
        result = topics_extract(actor=CLI_ACTOR, scope=scope, key=key, user_id=_user(user))
    except ApplicationError as error:
        raise CommandError(f"{error.message} {error.fields or ''}".strip()) from None
    leaves = sum(1 for t in result.topics if t.level == 0)
    command.stdout.write(
        f"{result.record_count} records: {leaves} topics, {len(result.topics) - leaves} parents"
    )
    for topic in result.topics:
        indent = "  " if topic.level == 0 and topic.parent_id else ""
        command.stdout.write(f"{indent}{topic.size:6d}  {topic.label}")


def rebuild_graph(command, *, user=None, **_) -> None:
    result = graph_rebuild(owner_id=_user(user) if user else None)
    command.stdout.write(
        f"{result.records} records read: {result.entities} entities, "
        f"{result.mentions} mentions, {result.relations} relations"
    )


def stats_lines() -> list[str]:
    return [
        f"topics: {Topic.objects.filter(level=0).count()} "
        f"(+{Topic.objects.filter(level=1).count()} parents)",
        f"entities: {Entity.objects.count()}, relations: {Relation.objects.count()}",
    ]
