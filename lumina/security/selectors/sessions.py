"""Read queries for browser sessions: a user's live sessions, never their keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from django.db.models import QuerySet
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from lumina.security.models.sessions import Session


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    id: uuid.UUID
    user_id: uuid.UUID | None
    user_agent: str
    ip_address: str | None
    authenticated_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    expires_at: dt.datetime
    mfa_verified: bool
    # The session the request itself came with.
    current: bool


def live_sessions(*, user_id: uuid.UUID | None = None) -> QuerySet[Session]:
    """Sessions not yet expired (a user's, or everyone's signed-in ones), newest activity first."""
    sessions = Session.objects.filter(expire_date__gt=timezone.now(), user__isnull=False)
    if user_id is not None:
        sessions = sessions.filter(user_id=user_id)
    return sessions.order_by("-last_seen_at", "public_id")


def session_info(session: Session, *, current_key: str | None = None) -> SessionInfo:
    data = session.get_decoded()
    return SessionInfo(
        id=session.public_id,
        user_id=session.user_id,
        user_agent=session.user_agent,
        ip_address=session.ip_address,
        authenticated_at=session.authenticated_at,
        last_seen_at=session.last_seen_at,
        expires_at=session.expire_date,
        mfa_verified=bool(data.get(DEVICE_ID_SESSION_KEY)),
        current=current_key is not None and session.session_key == current_key,
    )


def session_list(*, user_id: uuid.UUID, current_key: str | None = None) -> list[SessionInfo]:
    return [session_info(s, current_key=current_key) for s in live_sessions(user_id=user_id)]
