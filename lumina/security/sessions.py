"""The session engine (``SESSION_ENGINE``): Django's database sessions, with an idle timeout
and an absolute lifetime, and a row per session that names its user and activity.

A session lives until whichever comes first: ``LUMINA_SESSION_IDLE_TIMEOUT`` seconds
after it was last seen, or ``LUMINA_SESSION_MAX_AGE`` seconds after its user signed in.
Both are folded into the row's ``expire_date``, which Django's own loading checks, so an
expired session is simply not found: the request is anonymous. Sign-in time, last-seen
time, address and user agent live in the session data (the source of truth, carried
across key changes at login and MFA verification) and are copied into columns on every
save, so ``services.sessions`` can list and revoke a user's sessions.
``http.middleware`` stamps the sign-in time and refreshes the last-seen time at most
once a minute.
Sessions of users signed in through the admin console, REST or OIDC are all alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone

from lumina.security.models.sessions import Session

AUTHENTICATED_AT = "_lumina_authenticated_at"
LAST_SEEN = "_lumina_last_seen"
IP_ADDRESS = "_lumina_ip"
USER_AGENT = "_lumina_user_agent"
USER_AGENT_MAX = Session._meta.get_field("user_agent").max_length
# How stale the last-seen time may get: the idle timeout is exact to within this.
ACTIVITY_RESOLUTION = 60


def public_id_for(session_key: str) -> uuid.UUID:
    """A stable id for listing and revoking, from which the key cannot be recovered."""
    return uuid.UUID(bytes=hashlib.sha256(session_key.encode("ascii")).digest()[:16], version=4)


def _time(value: object) -> dt.datetime | None:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return None


def expiry(*, last_seen: dt.datetime, authenticated_at: dt.datetime | None) -> dt.datetime:
    idle_end = last_seen + dt.timedelta(seconds=settings.LUMINA_SESSION_IDLE_TIMEOUT)
    if authenticated_at is None:
        return idle_end
    return min(idle_end, authenticated_at + dt.timedelta(seconds=settings.LUMINA_SESSION_MAX_AGE))


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        return Session

    def _instance(self, session_key: str, data: dict) -> Session:
        now = timezone.now()
        user_id = data.get(SESSION_KEY)
        if user_id is not None and AUTHENTICATED_AT not in data:
            # Signed in without the user_logged_in signal (e.g. a test client's login).
            data[AUTHENTICATED_AT] = now.timestamp()
        authenticated_at = _time(data.get(AUTHENTICATED_AT)) if user_id is not None else None
        # Saving is activity: the data's last-seen time is refreshed with every save.
        data[LAST_SEEN] = now.timestamp()
        return self.model(
            session_key=session_key,
            session_data=self.encode(data),
            expire_date=expiry(last_seen=now, authenticated_at=authenticated_at),
            public_id=public_id_for(session_key),
            user_id=user_id,
            user_agent=str(data.get(USER_AGENT, ""))[:USER_AGENT_MAX],
            ip_address=data.get(IP_ADDRESS) or None,
            authenticated_at=authenticated_at,
            last_seen_at=now,
        )

    def create_model_instance(self, data: dict) -> Session:
        return self._instance(self._get_or_create_session_key(), data)

    async def acreate_model_instance(self, data: dict) -> Session:
        return self._instance(await self._aget_or_create_session_key(), data)
