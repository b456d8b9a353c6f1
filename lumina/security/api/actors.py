"""Who is calling: the ``Actor`` for a Django or DRF request or a websocket connection
(duck-typed: no DRF or Channels import)."""

from __future__ import annotations

import dataclasses

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


def actor_of_scope(scope) -> Actor:
    """The actor behind a websocket connection (after ``consumers.websocket_auth``)."""
    client = scope.get("client")
    ip_address = client[0] if client else None
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return Actor(user_id=None, ip_address=ip_address)
    return Actor.for_user(user, token=scope.get("auth"), ip_address=ip_address)


def actor_of_user_id(user_id, *, token_id=None, scopes=None, context: str | None = None) -> Actor:
    """The actor for deferred work known only by its user's id (a background run, an event
    handler): read from the database now, so a user deactivated or deleted since is
    refused; ``scopes`` keeps such work within the token it was asked with."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return Actor(user_id=None, context=context)
    actor = Actor.for_user(user, mfa_verified=False, context=context)
    return dataclasses.replace(
        actor,
        token_id=token_id,
        scopes=frozenset(scopes) if scopes is not None else None,
    )


def access_generation() -> object | None:
    """A value that changes whenever a token is revoked, a user is changed (deactivated,
    made staff) or a role, group, grant or policy changes: here at once, in every other
    process within ``generations.STALENESS_SECONDS`` of the commit.

    For connections that outlive one request (websockets): compare it with the value
    seen when the connection's access was last checked, and check again when it moved.
    None means it cannot be known now (the database is unreachable): check every time.
    Like any cached look-up it may query the database, so call it through ``run_sync``
    from an event loop.
    """
    from lumina.kernel import generations
    from lumina.security.services import authorization, tokens

    values = (
        generations.current(tokens.GENERATION),
        generations.current(authorization.GENERATION),
    )
    return None if None in values else values
