"""API tokens: issue, revoke, and authenticate a presented token fast enough for every request.

A token is ``lum_`` plus 43 URL-safe characters (256 random bits). Only its SHA-256
digest is stored; the token itself is shown once, in the response that creates it.

Authentication keeps recent look-ups in a small in-process LRU keyed by the digest,
for ``TOKEN_CACHE_TTL`` seconds. Revocation must still take effect at once in every
process, so each cached entry remembers the *revocation epoch* it was loaded under: a
random value kept in Django's cache (Redis when configured, shared by all processes)
and replaced whenever a token is revoked. Every request reads the epoch (one cache
GET) and reloads an entry whose epoch differs. Without Redis the cache is per process,
so another process notices a revocation only when its entry's TTL runs out.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q
from django.db.models.signals import post_save
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, NotFoundError, PermissionDeniedError
from lumina.security.events.tokens import ApiTokenCreated, ApiTokenRevoked
from lumina.security.models.tokens import ApiToken
from lumina.security.models.users import User
from lumina.security.selectors.tokens import ApiTokenDTO, TokenInfo, token_dto, token_get
from lumina.security.services.authorization import authorize
from lumina.security.types import Actor

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "lum_"  # noqa: S105 (a format marker, not a secret)
TOKEN_PATTERN = re.compile(r"lum_[A-Za-z0-9_-]{43}")
DISPLAY_PREFIX_LENGTH = 12  # "lum_" and 8 characters of the secret
SCOPE_PATTERN = re.compile(r"\*|[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\.([A-Za-z0-9_]+|\*)")
MAX_SCOPES = 50
MAX_NAME_LENGTH = 100
DEFAULT_SCOPES = ("*",)

TOKEN_CACHE_TTL = 30.0  # seconds; also bounds how long a user change (deactivation) takes
TOKEN_CACHE_SIZE = 2048
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
EPOCH_KEY = "lumina:security:tokens:epoch"

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


def tokens_manageable_by(actor: Actor, user_id: uuid.UUID) -> bool:
    """People manage their own tokens; staff, holders of ``security.tokens.manage`` and the
    system manage anyone's. A token acting needs a scope covering that permission."""
    if actor.is_system:
        return True
    if actor.user_id is None or not actor.is_active:
        return False
    if actor.scopes is not None and not scopes_cover(actor.scopes, [MANAGE_PERMISSION]):
        return False
    return actor.user_id == user_id or actor.is_staff or authorize(actor, MANAGE_PERMISSION).allowed


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
    become a way to borrow their privileges.
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
        raise PermissionDeniedError("A token cannot create a token with scopes beyond its own.")

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=secret[:DISPLAY_PREFIX_LENGTH],
            secret_hash=token_digest(secret),
            scopes=list(scopes),
            expires_at=expires_at,
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
            )
        )
    return IssuedToken(token=token_dto(token), secret=secret)


def token_revoke(*, token_id: uuid.UUID, actor: Actor) -> ApiTokenDTO:
    """Revoke a token at once, everywhere; revoking a revoked token changes nothing."""
    with transaction.atomic():
        token = (
            ApiToken.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=token_id)
            .first()
        )
        if token is None or not tokens_manageable_by(actor, token.user_id):
            raise NotFoundError(f"No API token {token_id}.")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            publish(
                ApiTokenRevoked(
                    actor_id=actor.user_id,
                    ip_address=actor.ip_address,
                    token_id=token.id,
                    user_id=token.user_id,
                    prefix=token.prefix,
                )
            )
            # Now, so this process stops at once, and again after commit, so no other
            # process keeps an entry it re-read before the revocation was visible.
            token_cache_invalidate()
            transaction.on_commit(token_cache_invalidate)
    return token_dto(token)


# --- Authentication -------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Entry:
    info: TokenInfo
    user_values: tuple
    epoch: str
    loaded_at: float
    last_used_at: dt.datetime | None


class _TokenCache:
    """A thread-safe LRU of recently authenticated tokens, keyed by digest, with a TTL."""

    def __init__(self, size: int, ttl: float) -> None:
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._ttl = ttl

    def get(self, digest: str, epoch: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry.epoch != epoch or time.monotonic() - entry.loaded_at > self._ttl:
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


def _current_epoch() -> str | None:
    """The shared revocation epoch, or None when the cache is unreachable."""
    try:
        epoch = cache.get(EPOCH_KEY)
        if epoch is None:
            # A fresh value after a cache flush, so entries from before it cannot match.
            cache.add(EPOCH_KEY, uuid.uuid4().hex, timeout=None)
            epoch = cache.get(EPOCH_KEY)
    except Exception:  # a cache outage: fall back to the database for every request
        logger.warning("token cache epoch unavailable; authenticating from the database")
        return None
    return epoch


def token_cache_invalidate() -> None:
    """Forget every cached token look-up, in this process and (through the epoch) in all."""
    _cache.clear()
    try:
        cache.set(EPOCH_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:
        logger.warning("token cache epoch could not be replaced")


# Saves that leave what a cached token entry holds (the user's flags) unchanged.
_BOOKKEEPING_FIELDS = frozenset({"last_login", "locked_until", "password"})


def _user_saved(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= _BOOKKEEPING_FIELDS:
        return
    # Deactivation or a change of staff/superuser flags must reach cached token look-ups
    # at once, in every process, not after the cache TTL.
    token_cache_invalidate()


def connect_user_invalidation() -> None:
    """User edits bypass the token services (admin console, CLI): watch them."""
    post_save.connect(_user_saved, sender=User, dispatch_uid="security.tokens.user_saved")


def _load(digest: str, epoch: str) -> _Entry:
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
        epoch=epoch,
        loaded_at=time.monotonic(),
        last_used_at=token.last_used_at,
    )


def _touch(entry: _Entry, now: dt.datetime) -> None:
    """Record use at most once a minute per token, across processes (conditional UPDATE)."""
    if entry.last_used_at is not None and now - entry.last_used_at < LAST_USED_RESOLUTION:
        return
    entry.last_used_at = now
    ApiToken.objects.filter(pk=entry.info.id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)


def token_authenticate(*, raw: str) -> tuple[User, TokenInfo]:
    """The user and token behind a presented token string, or ``InvalidTokenError``."""
    if not TOKEN_PATTERN.fullmatch(raw):
        raise InvalidTokenError("Malformed API token.", code="malformed_token")
    digest = token_digest(raw)
    epoch = _current_epoch()
    entry = _cache.get(digest, epoch) if epoch is not None else None
    if entry is None:
        entry = _load(digest, epoch or "")
        if epoch is not None:
            _cache.put(digest, entry)
    now = timezone.now()
    if entry.info.expires_at is not None and entry.info.expires_at <= now:
        raise InvalidTokenError("This API token has expired.", code="token_expired")
    _touch(entry, now)
    # A fresh instance per request: nothing a request does to it can leak into another.
    user = User.from_db(DEFAULT_DB_ALIAS, _USER_FIELDS, entry.user_values)
    return user, entry.info
