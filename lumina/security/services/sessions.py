"""Ending browser sessions: a user's own, every other one, or (with permission) anyone's.

A session ends by deleting its row: the next request carrying its cookie finds nothing
and is anonymous. Each ending is published as ``SessionsEnded``.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from lumina.kernel.bus import publish
from lumina.kernel.errors import NotFoundError
from lumina.security.events.sessions import SessionsEnded
from lumina.security.models.sessions import Session
from lumina.security.selectors.sessions import live_sessions
from lumina.security.services.authorization import require
from lumina.security.types import Actor, Resource

MANAGE_ACTION = "security.sessions.manage"
SESSION_RESOURCE = "security.session"


def sessions_end(
    *,
    user_id: uuid.UUID,
    reason: str,
    keep_session_key: str | None = None,
    only: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    ip_address: str | None = None,
) -> int:
    """End ``user_id``'s sessions (all, all but ``keep_session_key``, or the one ``only``)."""
    sessions = Session.objects.filter(user_id=user_id)
    if keep_session_key is not None:
        sessions = sessions.exclude(session_key=keep_session_key)
    if only is not None:
        sessions = sessions.filter(public_id=only)
    with transaction.atomic():
        ended = list(sessions.select_for_update().values_list("public_id", flat=True))
        if not ended:
            return 0
        Session.objects.filter(public_id__in=ended).delete()
        publish(
            SessionsEnded(
                user_id=user_id,
                reason=reason,
                session_ids=tuple(ended),
                actor_id=actor_id,
                ip_address=ip_address,
            )
        )
    return len(ended)


def session_revoke_own(*, actor: Actor, session_id: uuid.UUID) -> None:
    """End one of the caller's own sessions; someone else's is a 404, like a missing one."""
    if actor.user_id is None or not sessions_end(
        user_id=actor.user_id,
        reason="revoked",
        only=session_id,
        actor_id=actor.user_id,
        ip_address=actor.ip_address,
    ):
        raise NotFoundError("No such session.")


def sessions_revoke_others(*, actor: Actor, current_session_key: str | None) -> int:
    """End every session of the caller but the one making the request."""
    if actor.user_id is None:
        return 0
    return sessions_end(
        user_id=actor.user_id,
        reason="revoked",
        keep_session_key=current_session_key,
        actor_id=actor.user_id,
        ip_address=actor.ip_address,
    )


def _session_resource(session: Session) -> Resource:
    return Resource(
        type=SESSION_RESOURCE,
        id=str(session.public_id),
        attributes={"user_id": str(session.user_id)},
    )


def session_revoke(*, actor: Actor, session_id: uuid.UUID) -> None:
    """End anyone's session (``security.sessions.manage``)."""
    require(actor, MANAGE_ACTION)
    session = live_sessions().filter(public_id=session_id).first()
    if session is None:
        raise NotFoundError("No such session.")
    require(actor, MANAGE_ACTION, _session_resource(session))
    sessions_end(
        user_id=session.user_id,
        reason="revoked_by_administrator",
        only=session_id,
        actor_id=actor.user_id,
        ip_address=actor.ip_address,
    )


def sessions_revoke_user(*, actor: Actor, user_id: uuid.UUID) -> int:
    """End every session of a user (``security.sessions.manage``), e.g. after an incident."""
    require(actor, MANAGE_ACTION, Resource(type="security.user", id=str(user_id)))
    return sessions_end(
        user_id=user_id,
        reason="revoked_by_administrator",
        actor_id=actor.user_id,
        ip_address=actor.ip_address,
    )
