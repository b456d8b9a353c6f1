"""Who is calling: the ``Actor`` for a Django or DRF request (duck-typed, no DRF import)."""

from __future__ import annotations

from lumina.security.types import Actor


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def actor_of(request) -> Actor:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Actor(user_id=None, ip_address=client_ip(request))
    token = getattr(request, "auth", None)
    token_id = getattr(token, "id", None)
    scopes = getattr(token, "scopes", None)
    is_verified = getattr(user, "is_verified", None)
    return Actor(
        user_id=user.pk,
        email=user.email,
        is_superuser=user.is_superuser,
        is_staff=user.is_staff,
        is_active=user.is_active,
        token_id=token_id,
        scopes=frozenset(scopes) if token_id is not None and scopes is not None else None,
        mfa_verified=bool(is_verified()) if callable(is_verified) else False,
        ip_address=client_ip(request),
    )
