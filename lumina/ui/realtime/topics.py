"""The topic registry: which topics a realtime client may subscribe to, and who may.

A topic is a name (``usage``) or a family of keyed names (``documents:<id>``). Each says
which permission a subscriber needs (asked of ``security.api.authorize``, with the key
as the resource's id for a keyed topic, so object grants count) and, optionally, a check
of its own (say, that the document exists). Its audience decides how its events travel:

* ``PERSONAL``: an event names the users (or the API token) it concerns and goes to
  their groups alone, so another user's subscriber never receives it, whatever they
  subscribed to;
* ``SHARED``: one group per topic, for events everyone allowed to subscribe may see
  (circuit changes, a document's changes).

Contexts register their topics from their ``AppConfig.ready()``; the built-in ones
are registered below.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable

from lumina.security.api import Actor, Resource, authorize

# Keys become part of a channel-layer group name: ASCII letters, digits, '-', '_'.
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOPIC_LENGTH = 100


class Audience(enum.StrEnum):
    PERSONAL = "personal"
    SHARED = "shared"


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a subscription is refused: ``code`` for programs, ``reason`` for people."""

    code: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Topic:
    name: str
    permission: str
    audience: Audience
    description: str
    # A family of topics subscribed as ``name:key`` (one document, one collection).
    keyed: bool = False
    # For a keyed topic: the resource type the key is an id of, for object permissions.
    resource_type: str | None = None
    # Asked after the permission: a refusal reason, or None. Runs in a worker thread.
    check: Callable[[Actor, str | None], str | None] | None = None


_topics: dict[str, Topic] = {}


def register(topic: Topic) -> Topic:
    """Make ``topic`` subscribable (registering the same name again replaces it)."""
    # With "rt.topic." and a 64-character key, a group name stays under Channels' 100.
    if not re.fullmatch(r"[a-z][a-z0-9_.]{0,23}", topic.name):
        raise ValueError(
            f"topic name {topic.name!r}: up to 24 lower-case letters, digits, '.', '_'"
        )
    if topic.keyed and topic.check is None and topic.resource_type is None:
        raise ValueError(f"keyed topic {topic.name} needs a resource type or a check")
    _topics[topic.name] = topic
    return topic


def registered() -> dict[str, Topic]:
    return dict(_topics)


def parse(subscription: str) -> tuple[Topic, str | None] | Refusal:
    """The topic and key ``subscription`` names, or why it names none."""
    if not isinstance(subscription, str) or not subscription:
        return Refusal("invalid_topic", "A topic is a non-empty string.")
    if len(subscription) > MAX_TOPIC_LENGTH:
        return Refusal("invalid_topic", f"A topic is at most {MAX_TOPIC_LENGTH} characters.")
    name, separator, key = subscription.partition(":")
    topic = _topics.get(name)
    if topic is None:
        known = ", ".join(sorted(t.name + (":<id>" if t.keyed else "") for t in _topics.values()))
        return Refusal("unknown_topic", f"No topic named {name!r}; topics: {known}.")
    if topic.keyed and not (separator and _KEY.fullmatch(key)):
        return Refusal("invalid_topic", f"Topic {name} needs a key: {name}:<id>.")
    if not topic.keyed and separator:
        return Refusal("invalid_topic", f"Topic {name} takes no key.")
    return topic, (key if topic.keyed else None)


def refusal(actor: Actor, subscription: str) -> Refusal | None:
    """Why ``actor`` may not subscribe to ``subscription`` (None: it may).

    Synchronous and may query the database (a cold permission cache, a topic's check):
    call it from a worker thread.
    """
    parsed = parse(subscription)
    if isinstance(parsed, Refusal):
        return parsed
    topic, key = parsed
    resource = Resource(topic.resource_type, key) if topic.resource_type and key else None
    decision = authorize(actor, topic.permission, resource)
    if not decision.allowed:
        return Refusal("forbidden", f"{decision.reason}.")
    if topic.check is not None:
        reason = topic.check(actor, key)
        if reason is not None:
            return Refusal("forbidden", reason)
    return None


def audience(subscription: str) -> Audience | None:
    parsed = parse(subscription)
    return None if isinstance(parsed, Refusal) else parsed[0].audience


# --- The built-in topics: the domain contexts' events (translated in ui.handlers) -----

USAGE = register(
    Topic(
        name="usage",
        permission="providers.read",
        audience=Audience.PERSONAL,
        description="Usage and cost of your own requests, as each is recorded.",
    )
)
BUDGETS = register(
    Topic(
        name="budgets",
        permission="providers.read",
        audience=Audience.PERSONAL,
        description="Requests refused because your budget (or your token's) is spent.",
    )
)
CIRCUITS = register(
    Topic(
        name="circuits",
        permission="providers.read",
        audience=Audience.SHARED,
        description="A model deployment's circuit opening (skipped) or closing (back).",
    )
)
TOOLS = register(
    Topic(
        name="tools",
        permission="tools.read",
        audience=Audience.PERSONAL,
        description="Your tool executions finishing or failing.",
    )
)
MEMORY = register(
    Topic(
        name="memory",
        permission="memory.read",
        audience=Audience.PERSONAL,
        description="Your memories stored, changed, superseded or expired.",
    )
)


def _document_readable(actor: Actor, key: str | None) -> str | None:
    # Roles never open someone's document (ADR 0029): authorize() above let a role's
    # documents.read through, the document's own rules decide.
    import uuid

    from lumina.ui.selectors.document_access import document_row, may

    try:
        document = document_row(uuid.UUID(key or ""))
    except ValueError:
        document = None
    if document is None or not may(actor, "documents.read", document):
        return "No such document, or it is not shared with you."
    return None


DOCUMENTS = register(
    Topic(
        name="documents",
        permission="documents.read",
        audience=Audience.SHARED,
        description="A document you may read renamed, shared, versioned, restored or deleted.",
        keyed=True,
        resource_type="ui.document",
        check=_document_readable,
    )
)
