"""Session bookkeeping at the edge: the sign-in time, and activity that keeps a session alive.

``record_sign_in`` (a ``user_logged_in`` receiver) starts the absolute lifetime at every
sign-in, whatever the path (REST password, OIDC, admin console); the middleware marks a
signed-in session as seen, so its idle timeout restarts (see ``lumina.security.sessions``).
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.auth import SESSION_KEY
from django.utils import timezone

from lumina.security.http.actors import client_ip
from lumina.security.sessions import (
    ACTIVITY_RESOLUTION,
    AUTHENTICATED_AT,
    IP_ADDRESS,
    LAST_SEEN,
    USER_AGENT,
    USER_AGENT_MAX,
)


def _client(request) -> tuple[str | None, str]:
    return client_ip(request), request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX]


def record_sign_in(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    session[AUTHENTICATED_AT] = timezone.now().timestamp()
    session[IP_ADDRESS], session[USER_AGENT] = _client(request)


def connect_sign_in_time() -> None:
    from django.contrib.auth.signals import user_logged_in

    user_logged_in.connect(record_sign_in, dispatch_uid="lumina.security.sessions.sign_in")


def note_activity(request) -> None:
    """Mark a signed-in session as seen (saved at most once a minute, or when the client's
    address or user agent changed). Only a session the request already loaded is looked
    at, so this costs no query of its own."""
    session = getattr(request, "session", None)
    if session is None or not session.accessed or session.get(SESSION_KEY) is None:
        return
    ip_address, user_agent = _client(request)
    if session.get(IP_ADDRESS) != ip_address or session.get(USER_AGENT) != user_agent:
        session[IP_ADDRESS], session[USER_AGENT] = ip_address, user_agent
    last_seen = session.get(LAST_SEEN)
    now = timezone.now().timestamp()
    if not isinstance(last_seen, int | float) or now - last_seen >= ACTIVITY_RESOLUTION:
        session.modified = True  # the store stamps the time when it saves


class SessionActivityMiddleware:
    """After ``SessionMiddleware`` and ``AuthenticationMiddleware`` in ``MIDDLEWARE``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        note_activity(request)
        return response

    async def __acall__(self, request):
        response = await self.get_response(request)
        note_activity(request)
        return response
