"""API tokens: issue, revoke, and authenticate a presented token fast enough for every request.

A token is ``lum_`` plus 43 URL-safe characters (256 random bits). Only its SHA-256
digest is stored; the token itself is shown once, in the response that creates it.

Authentication keeps recent look-ups in a small in-process LRU keyed by the digest,
for ``TOKEN_CACHE_TTL`` seconds. Each entry remembers the ``security.tokens``
generation (``lumina.kernel.generations``) it was loaded under; revoking a token or
changing a user bumps it in the same transaction, so this process reloads at once and
every other within ``generations.STALENESS_SECONDS`` of the commit. A warm look-up
reads only memory: no cache server, no database.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import re
import secrets
import threading
import time
import types
import uuid
from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q
from django.db.models.signals import post_save
from django.utils import timezone

from lumina.kernel import generations
from lumina.kernel.bus import publish, publish_many
from lumina.kernel.errors import ApplicationError, NotFoundError, PermissionDeniedError
from lumina.security.events.rbac import AccessDenied
from lumina.security.events.tokens import ApiTokenCreated, ApiTokenRevoked
from lumina.security.models.tokens import ApiToken
from lumina.security.models.users import User
from lumina.security.selectors.tokens import ApiTokenDTO, TokenInfo, token_dto, token_get
from lumina.security.services import token_refusals
from lumina.security.services.authorization import authorize
from lumina.security.services.users import user_takeover_refusal
from lumina.security.types import Actor

TOKEN_PREFIX = "lum_"  # noqa: S105 (a format marker, not a secret)
TOKEN_PATTERN = re.compile(r"lum_[A-Za-z0-9_-]{43}")
DISPLAY_PREFIX_LENGTH = 12  # "lum_" and 8 characters of the secret
SCOPE_PATTERN = re.compile(r"\*|[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\.([A-Za-z0-9_]+|\*)")
MAX_SCOPES = 50
MAX_NAME_LENGTH = 100
DEFAULT_SCOPES = ("*",)

TOKEN_CACHE_TTL = 30.0  # seconds
TOKEN_CACHE_SIZE = 2048
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
GENERATION = "security.tokens"

_USER_FIELDS = tuple(f.attname for f in User._meta.concrete_fields if f.attname != "password")


class InvalidTokenError(ApplicationError):
    """A presented token is malformed, unknown, expired, revoked or its user is inactive."""

    code = "invalid_token"
    status = 401


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    """A new token: ``secret`` is the only copy of the token there will ever be."""

    token: ApiTokenDTO
    secret: str


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# --- Scopes ---------------------------------------------------------------------------


def scopes_validate(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, de-duplicated in order; ``ApplicationError`` naming ``scopes`` if invalid."""
    cleaned: list[str] = []
    problems: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or not SCOPE_PATTERN.fullmatch(scope) or len(scope) > 100:
            problems.append(
                f"{str(scope)[:100]!r} is not a scope: use '*', '<context>.*' or "
                "'<context>.<permission>' (letters, digits, dots, underscores)."
            )
        elif scope not in cleaned:
            cleaned.append(scope)
    if not cleaned and not problems:
        problems.append("Give at least one scope.")
    if len(cleaned) > MAX_SCOPES:
        problems.append(f"At most {MAX_SCOPES} scopes.")
    if problems:
        raise ApplicationError("Invalid scopes.", fields={"scopes": problems}, code="invalid")
    return tuple(cleaned)


def scope_covers(granted: str, wanted: str) -> bool:
    """Whether the pattern ``granted`` includes everything ``wanted`` does."""
    if granted in ("*", wanted):
        return True
    if granted.endswith(".*") and wanted != "*":
        return wanted.startswith(granted[:-1])
    return False


def scopes_cover(granted: Iterable[str], wanted: Iterable[str]) -> bool:
    granted = tuple(granted)
    return all(any(scope_covers(g, w) for g in granted) for w in wanted)


# --- Issue and revoke -----------------------------------------------------------------

MANAGE_PERMISSION = "security.tokens.manage"


def tokens_manage_refusal(actor: Actor, user_id: uuid.UUID) -> str | None:
    """Why ``actor`` may not manage ``user_id``'s tokens, or None."""
    if actor.is_system:
        return None
    if actor.user_id is None or not actor.is_active:
        return "not authenticated"
    if actor.scopes is not None and not scopes_cover(actor.scopes, [MANAGE_PERMISSION]):
        return f"the API token lacks a scope for {MANAGE_PERMISSION}"
    if actor.user_id == user_id:
        return None
    decision = authorize(actor, MANAGE_PERMISSION)
    if not decision.allowed:
        return decision.reason
    target = User.objects.filter(pk=user_id).first()
    return None if target is None else user_takeover_refusal(actor, target)


def tokens_manageable_by(actor: Actor, user_id: uuid.UUID) -> bool:
    """People manage their own tokens; holders of ``security.tokens.manage`` those of
    accounts that hold no more than they do (a superuser's: only superusers); the system
    anyone's. A token acting needs a scope covering that permission."""
    return tokens_manage_refusal(actor, user_id) is None


def tokens_manage_require(actor: Actor, user_id: uuid.UUID) -> None:
    """``tokens_manageable_by``, enforced: a refusal is audited and raised (403)."""
    reason = tokens_manage_refusal(actor, user_id)
    if reason is None:
        return
    publish(
        AccessDenied(
            action=MANAGE_PERMISSION,
            reason=reason,
            resource_type="security.user",
            resource_id=str(user_id),
            caller_context=actor.context or "",
            token_id=actor.token_id,
            actor_id=actor.user_id,
            ip_address=actor.ip_address,
        )
    )
    raise PermissionDeniedError(f"You may not manage this user's tokens: {reason}.")


def tokens_issuable_by(actor: Actor, user_id: uuid.UUID) -> bool:
    return actor.is_system or actor.user_id == user_id or actor.is_superuser


def token_read(*, token_id: uuid.UUID, actor: Actor) -> ApiTokenDTO:
    """The token, if ``actor`` may see it; otherwise the same 404 as for a missing one."""
    token = token_get(token_id=token_id)
    if token is None or not tokens_manageable_by(actor, token.user_id):
        raise NotFoundError(f"No API token {token_id}.")
    return token


def token_create(
    *,
    user_id: uuid.UUID,
    actor: Actor,
    name: str = "",
    scopes: Sequence[str] = DEFAULT_SCOPES,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """Issue a token for ``user_id``; the returned secret is not stored anywhere.

    A token acts with its user's full rights, so only that user, a superuser or the
    system (the CLI) may mint one: managing others' tokens (list, revoke) must not
    become a way to borrow their privileges. A token minting a token is its parent:
    the child reaches no further (scopes) and lives no longer (expiry) than the
    parent, and is revoked with it.
    """
    if not tokens_manageable_by(actor, user_id) or not tokens_issuable_by(actor, user_id):
        raise PermissionDeniedError("You may not create tokens for this user.")
    fields: dict[str, list[str]] = {}
    try:
        scopes = scopes_validate(scopes)
    except ApplicationError as exc:
        fields.update(exc.fields)
    if len(name) > MAX_NAME_LENGTH:
        fields["name"] = [f"At most {MAX_NAME_LENGTH} characters."]
    if expires_at is not None:
        if timezone.is_naive(expires_at):
            expires_at = timezone.make_aware(expires_at, dt.UTC)
        if expires_at <= timezone.now():
            fields["expires_at"] = ["Must be in the future."]
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        fields["user"] = ["No active user has this id."]
    if fields:
        raise ApplicationError("Invalid token request.", fields=fields, code="invalid")
    # A token may mint tokens, but never ones reaching further than itself.
    if actor.scopes is not None and not scopes_cover(actor.scopes, scopes):
        raise PermissionDeniedError(
            "A token cannot create a token with scopes beyond its own.",
            fields={"scopes": ["Wider than the scopes of the token making the request."]},
        )

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        parent = _parent_locked(actor)
        if parent is not None and parent.expires_at is not None:
            if expires_at is None:
                expires_at = parent.expires_at  # a child never outlives its parent
            elif expires_at > parent.expires_at:
                raise PermissionDeniedError(
                    "A token cannot create a token that expires after itself.",
                    fields={"expires_at": [f"At the latest {parent.expires_at.isoformat()}."]},
                )
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=secret[:DISPLAY_PREFIX_LENGTH],
            secret_hash=token_digest(secret),
            scopes=list(scopes),
            expires_at=expires_at,
            parent=parent,
        )
        publish(
            ApiTokenCreated(
                actor_id=actor.user_id,
                ip_address=actor.ip_address,
                token_id=token.id,
                user_id=user.id,
                token_name=name,
                prefix=token.prefix,
                scopes=tuple(scopes),
                expires_at=expires_at,
                parent_id=parent.id if parent is not None else None,
            )
        )
    return IssuedToken(token=token_dto(token), secret=secret)


def _parent_locked(actor: Actor) -> ApiToken | None:
    """The token the actor acts through, locked until commit so that it cannot be revoked
    while a child is being minted (which would leave the child behind)."""
    if actor.token_id is None:
        return None
    parent = ApiToken.objects.select_for_update().filter(pk=actor.token_id).first()
    if parent is None or parent.revoked_at is not None:
        raise InvalidTokenError("This API token has been revoked.", code="token_revoked")
    return parent


def token_revoke(*, token_id: uuid.UUID, actor: Actor) -> ApiTokenDTO:
    """Revoke a token, with every token minted through it, here at once and everywhere
    within a second; revoking a revoked token changes nothing but its descendants."""
    with transaction.atomic():
        token = (
            ApiToken.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=token_id)
            .first()
        )
        if token is None or not tokens_manageable_by(actor, token.user_id):
            raise NotFoundError(f"No API token {token_id}.")
        now = timezone.now()
        revoked = [token] if token.revoked_at is None else []
        revoked += _live_descendants(token.pk)
        for row in revoked:
            row.revoked_at = now
        ApiToken.objects.filter(pk__in=[row.pk for row in revoked]).update(revoked_at=now)
        if revoked:
            publish_many(
                [
                    ApiTokenRevoked(
                        actor_id=actor.user_id,
                        ip_address=actor.ip_address,
                        token_id=row.id,
                        user_id=row.user_id,
                        prefix=row.prefix,
                        revoked_with=token.id if row.pk != token.pk else None,
                    )
                    for row in revoked
                ]
            )
            token_cache_invalidate()
    return token_dto(token)


def _live_descendants(token_id: uuid.UUID) -> list[ApiToken]:
    """Every unrevoked token minted through ``token_id``, at any depth, locked."""
    found: list[ApiToken] = []
    frontier = [token_id]
    while frontier:
        children = list(
            ApiToken.objects.select_for_update().filter(parent_id__in=frontier).order_by("pk")
        )
        found += [child for child in children if child.revoked_at is None]
        frontier = [child.pk for child in children]
    return found


# --- Authentication -------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Entry:
    info: TokenInfo
    user_values: tuple
    generation: generations.Value | None
    loaded_at: float
    last_used_at: dt.datetime | None

    # The user's fields ``Actor.for_user`` reads: read-only, shared by the requests.
    principal: types.SimpleNamespace


class _TokenCache:
    """A thread-safe LRU of recently authenticated tokens, keyed by digest, with a TTL."""

    def __init__(self, size: int, ttl: float) -> None:
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._ttl = ttl

    def get(self, digest: str, generation: generations.Value) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry.generation != generation or time.monotonic() - entry.loaded_at > self._ttl:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry

    def put(self, digest: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _TokenCache(TOKEN_CACHE_SIZE, TOKEN_CACHE_TTL)


def token_cache_invalidate() -> None:
    """Forget every cached token look-up, here at once and everywhere once the current
    transaction commits; call it inside that transaction, after the change."""
    _cache.clear()
    generations.bump(GENERATION)


def token_cache_clear() -> None:
    """Drop this process's cached look-ups without telling others (tests, benchmarks)."""
    _cache.clear()


# Saves that leave what a cached token entry holds (the user's flags) unchanged.
_BOOKKEEPING_FIELDS = frozenset({"last_login", "locked_until", "password"})


def _user_saved(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= _BOOKKEEPING_FIELDS:
        return
    # Deactivation or a change of staff/superuser flags must reach cached token look-ups
    # in every process within the generations' bound, not after the cache TTL.
    token_cache_invalidate()


def connect_user_invalidation() -> None:
    """User edits bypass the token services (admin console, CLI): watch them."""
    post_save.connect(_user_saved, sender=User, dispatch_uid="security.tokens.user_saved")


def _load(digest: str, generation: generations.Value | None) -> _Entry:
    token = ApiToken.objects.select_related("user").filter(secret_hash=digest).first()
    if token is None:
        raise InvalidTokenError("Invalid API token.")
    if token.revoked_at is not None:
        raise InvalidTokenError("This API token has been revoked.", code="token_revoked")
    if not token.user.is_active:
        raise InvalidTokenError("Invalid API token.")
    return _Entry(
        info=TokenInfo(
            id=token.id,
            user_id=token.user_id,
            scopes=tuple(token.scopes),
            expires_at=token.expires_at,
        ),
        user_values=tuple(getattr(token.user, name) for name in _USER_FIELDS),
        principal=types.SimpleNamespace(
            pk=token.user_id, **{name: getattr(token.user, name) for name in _USER_FIELDS}
        ),
        generation=generation,
        loaded_at=time.monotonic(),
        last_used_at=token.last_used_at,
    )


def _touch(entry: _Entry, now: dt.datetime) -> None:
    """Record use at most once a minute per token, across processes (conditional UPDATE)."""
    if entry.last_used_at is not None and now - entry.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(pk=entry.info.id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    # After the update: on an event loop it raises, and run_sync repeats the call.
    entry.last_used_at = now


# InvalidTokenError codes, as the refusal counts name them.
_REFUSALS = {
    "malformed_token": "malformed",
    "invalid_token": "unknown",
    "token_expired": "expired",
    "token_revoked": "revoked",
}


def token_authenticate(*, raw: str, ip_address: str | None = None) -> tuple[User, TokenInfo]:
    """The user and token behind a presented token string, or ``InvalidTokenError``.

    Refusals are counted per client address and token prefix (``token_refusals``).
    """
    entry = _checked(raw, ip_address)
    # A fresh instance per request: nothing a request does to it can leak into another.
    user = User.from_db(DEFAULT_DB_ALIAS, _USER_FIELDS, entry.user_values)
    return user, entry.info


def token_actor(*, raw: str, ip_address: str | None = None) -> Actor:
    """``token_authenticate`` as an ``Actor``, without building a user instance per request
    (the ``/v1`` gateway's path)."""
    entry = _checked(raw, ip_address)
    return Actor.for_user(entry.principal, token=entry.info, ip_address=ip_address)


def _checked(raw: str, ip_address: str | None) -> _Entry:
    try:
        found = _authenticate(raw)
    except InvalidTokenError as error:
        token_refusals.refusal_record(
            reason=_REFUSALS.get(error.code, "unknown"), raw=raw, ip_address=ip_address
        )
        raise
    token_refusals.flush_due()
    return found


def _authenticate(raw: str) -> _Entry:
    if not TOKEN_PATTERN.fullmatch(raw):
        raise InvalidTokenError("Malformed API token.", code="malformed_token")
    digest = token_digest(raw)
    generation = generations.current(GENERATION)
    entry = _cache.get(digest, generation) if generation is not None else None
    if entry is None:
        entry = _load(digest, generation)
        if generation is not None:
            _cache.put(digest, entry)
    now = timezone.now()
    if entry.info.expires_at is not None and entry.info.expires_at <= now:
        raise InvalidTokenError("This API token has expired.", code="token_expired")
    _touch(entry, now)
    return entry
