"""Websocket authentication: the same sessions and API tokens as HTTP.

Browsers bring their session cookie (Channels' ``AuthMiddlewareStack``); programs send
``Authorization: Bearer lum_…`` in the handshake. A presented token that is malformed,
unknown, expired or revoked refuses the handshake outright (close code 4401) rather
than falling back to anonymous.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings

from lumina.security.services.tokens import InvalidTokenError, token_authenticate

UNAUTHORISED_CLOSE_CODE = 4401


def _bearer(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    return None


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        raw = _bearer(scope)
        if raw is None:
            return await super().__call__(scope, receive, send)
        client = scope.get("client")
        try:
            user, info = await database_sync_to_async(token_authenticate)(
                raw=raw, ip_address=client[0] if client else None
            )
        except InvalidTokenError:
            await receive()  # the client's websocket.connect
            await send({"type": "websocket.close", "code": UNAUTHORISED_CLOSE_CODE})
            return None
        return await super().__call__({**scope, "user": user, "auth": info}, receive, send)


def websocket_auth(inner):
    """Sessions first, then a bearer token (which wins when both are present)."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))


class BrowserOriginValidator(OriginValidator):
    """Refuses handshakes from pages of other sites (cross-site websocket hijacking).

    Browsers always send ``Origin`` with a websocket handshake, so a page elsewhere is
    refused by its origin. Programs (a CLI, a Node or Python client holding a token) send
    none, and a missing header is no sign of a browser: Channels' validator refuses
    them, which would leave token clients no way in, so this one lets them through.
    """

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


def browser_origin_validator(inner):
    """``AllowedHostsOriginValidator`` with ``BrowserOriginValidator``'s rule for programs."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(inner, allowed)
