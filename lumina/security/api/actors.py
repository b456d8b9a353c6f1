"""Who is calling: the ``Actor`` for a Django or DRF request (duck-typed, no DRF import)."""

from __future__ import annotations

from lumina.security.types import Actor


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def actor_of(request) -> Actor:
    """The actor behind a request: REST (session or token), the admin console, any view."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Actor(user_id=None, ip_address=client_ip(request))
    token = getattr(request, "auth", None)
    if getattr(token, "id", None) is None or getattr(token, "scopes", None) is None:
        token = None  # a session (DRF sets ``auth`` to None, or to a CSRF marker)
    return Actor.for_user(user, token=token, ip_address=client_ip(request))
