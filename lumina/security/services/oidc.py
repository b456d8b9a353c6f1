"""OAuth/OIDC login use-cases: identity providers, and the authorization code flow with PKCE.

authlib's Django client does the protocol work: state, nonce and PKCE kept in the
session, the code exchange, and ID token checks (JWKS signature, issuer, audience,
nonce, expiry). The client secret is decrypted only for the code exchange and lives
only in that request's memory; it and the tokens are never logged or published.

Every call to the provider (discovery, JWKS, token, UserInfo) goes through the kernel's
outbound guard and follows no redirect. A login is refused while the account is locked
(the password lockout), and every way a first login can fail to find an account answers
alike (``no_linked_account``), so an answer never tells whether an account has that email.
Linking to an existing account by verified email never happens on its own for staff,
superusers or accounts with MFA: the login leaves a pending link in the browser's session,
which the user confirms once logged in with their own password (and second factor).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import DjangoOAuth2App, OAuth
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from joserfc.errors import ClaimError, JoseError

from lumina.kernel import outbound
from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, ConflictError, NotFoundError
from lumina.security.events.oidc import (
    ExternalIdentityLinked,
    ExternalIdentityLinkRefused,
    ExternalIdentityUnlinked,
    IdentityProviderCreated,
    IdentityProviderDeleted,
    IdentityProviderUpdated,
    OidcLoginFailed,
    OidcLoginSucceeded,
)
from lumina.security.models.oidc import DEFAULT_SCOPES, ExternalIdentity, IdentityProvider
from lumina.security.models.users import User
from lumina.security.selectors.mfa import user_has_confirmed_device
from lumina.security.selectors.oidc import (
    external_identity_for,
    identity_provider_by_id,
    user_by_email,
)
from lumina.security.services.auth import AccountLockedError, attempt_guard
from lumina.security.services.authorization import authorize
from lumina.security.services.crypto import secret_decrypt, secret_encrypt, secret_forget
from lumina.security.services.users import user_create
from lumina.security.types import Actor

logger = structlog.get_logger(__name__)


class _DropCodeVerifier(logging.Filter):
    """authlib logs each PKCE code verifier at DEBUG; a verifier is a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "code_verifier" not in record.getMessage()


logging.getLogger("authlib.integrations.base_client.sync_app").addFilter(_DropCodeVerifier())

DISCOVERY_PATH = "/.well-known/openid-configuration"
METADATA_CACHE_SECONDS = 300
HTTP_TIMEOUT_SECONDS = 10
ID_TOKEN_LEEWAY_SECONDS = 60
# The discovery document's fields the client uses; anything else the provider says is ignored.
METADATA_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "id_token_signing_alg_values_supported",
    "code_challenge_methods_supported",
)
REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
EDITABLE_FIELDS = (
    "display_name",
    "issuer",
    "client_id",
    "scopes",
    "enabled",
    "allow_signup",
    "link_by_verified_email",
)
LOOPBACK_HOSTS = {"localhost"}
SUBJECT_MAX_LENGTH = 255  # OIDC Core §2: a sub is at most 255 ASCII characters
SYSTEM_ACTOR = Actor.system("security")
# Whoever may send the stored client secret to a new issuer without typing it again.
DECRYPT_PERMISSION = "security.secrets.decrypt"
# A pending link (see oidc_link_confirm) waits this long in the browser's session.
PENDING_LINK_SESSION_KEY = "lumina_oidc_pending_link"
PENDING_LINK_SECONDS = 600
NOT_LINKED_MESSAGE = (
    "No account could be signed in with this identity. If you already have an account, "
    "log in with it and confirm the link (POST /api/v1/auth/oauth/link)."
)


class OidcLoginError(ApplicationError):
    """A login through an identity provider was refused; ``reason`` goes to the audit log."""

    code = "oidc_login_failed"
    status = 401

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        subject: str | None = None,
        retry_after: int | None = None,
        pending_link: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, fields=fields, code=code)
        self.reason = reason
        self.subject = subject
        self.retry_after = retry_after
        # What the browser's session keeps for oidc_link_confirm (never shown to the caller).
        self.pending_link = pending_link
        if status is not None:
            self.status = status


@dataclasses.dataclass(frozen=True)
class OidcLogin:
    user: User
    identity: ExternalIdentity
    # "subject", "verified_email" or "signup".
    matched_by: str
    mfa_required: bool


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY_PATH


def issuer_problem(issuer: str) -> str | None:
    """Why ``issuer`` cannot be used, or None. Plain http is for loopback and development."""
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return "must be an http(s) URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if problem := outbound.host_problem(parts.hostname):
        return problem
    if parts.scheme == "http" and settings.LUMINA_ENV == "production" and not _loopback(parts):
        return "must use https"
    return None


def _loopback(parts: Any) -> bool:
    if parts.hostname in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def identity_provider_problems(
    *, issuer: str | None = None, scopes: str | None = None
) -> dict[str, list[str]]:
    """What is wrong with these settings, by field (empty when nothing is)."""
    fields: dict[str, list[str]] = {}
    if issuer is not None and (problem := issuer_problem(issuer)):
        fields["issuer"] = [problem]
    if scopes is not None and "openid" not in scopes.split():
        fields["scopes"] = ["must include openid"]
    return fields


def _check(*, issuer: str | None = None, scopes: str | None = None) -> None:
    if fields := identity_provider_problems(issuer=issuer, scopes=scopes):
        raise ApplicationError("Invalid input.", fields=fields, code="invalid")


# --- Identity providers -------------------------------------------------------------------


def identity_provider_create(
    *,
    slug: str,
    display_name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    actor: Actor,
    scopes: str = DEFAULT_SCOPES,
    enabled: bool = True,
    allow_signup: bool = False,
    link_by_verified_email: bool = False,
) -> IdentityProvider:
    _check(issuer=issuer, scopes=scopes)
    if not client_secret:
        raise ApplicationError(
            "Invalid input.", fields={"client_secret": ["may not be blank"]}, code="invalid"
        )
    provider = IdentityProvider(
        id=uuid.uuid4(),
        slug=slug,
        display_name=display_name,
        issuer=issuer,
        client_id=client_id,
        scopes=scopes,
        enabled=enabled,
        allow_signup=allow_signup,
        link_by_verified_email=link_by_verified_email,
    )
    provider.full_clean(exclude=["client_secret_encrypted"])
    with transaction.atomic():
        provider.client_secret_encrypted = secret_encrypt(
            plaintext=client_secret, owner=provider.secret_owner, actor=actor
        )
        provider.save(force_insert=True)
        publish(
            IdentityProviderCreated(
                provider_id=provider.id,
                slug=provider.slug,
                issuer=provider.issuer,
                actor_id=actor.user_id,
                ip_address=actor.ip_address,
            )
        )
    return provider


def identity_provider_update(
    *,
    provider: IdentityProvider,
    actor: Actor,
    client_secret: str | None = None,
    **changes: Any,
) -> IdentityProvider:
    """Change the given fields; a non-empty ``client_secret`` replaces the stored one."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")
    changed = [name for name, value in changes.items() if getattr(provider, name) != value]
    # Only a new issuer is checked: one saved before the policy tightened stays editable.
    _check(issuer=changes["issuer"] if "issuer" in changed else None, scopes=changes.get("scopes"))
    if problems := secret_required_problems(
        actor=actor,
        has_stored_secret=bool(provider.client_secret_encrypted),
        changed=changed,
        client_secret=client_secret,
    ):
        logger.warning(
            "identity provider issuer change refused without the secret",
            provider=provider.slug,
            actor_id=str(actor.user_id),
        )
        raise ApplicationError(
            problems["issuer"][0], fields=problems, code="client_secret_required"
        )
    for name in changed:
        setattr(provider, name, changes[name])
    provider.full_clean(exclude=["client_secret_encrypted"])
    with transaction.atomic():
        if client_secret:
            old = provider.client_secret_encrypted
            provider.client_secret_encrypted = secret_encrypt(
                plaintext=client_secret, owner=provider.secret_owner, actor=actor
            )
            # Shred the old secret's data key: its ciphertext can never be opened again.
            secret_forget(owner=provider.secret_owner, ciphertext=old, actor=actor)
            changed.append("client_secret")
        if changed:
            provider.save()
            publish(
                IdentityProviderUpdated(
                    provider_id=provider.id,
                    slug=provider.slug,
                    changed=tuple(changed),
                    actor_id=actor.user_id,
                    ip_address=actor.ip_address,
                )
            )
    return provider


def secret_required_problems(
    *, actor: Actor, has_stored_secret: bool, changed: Any, client_secret: str | None
) -> dict[str, list[str]]:
    """Field errors when a change of ``issuer`` keeps the stored client secret; else empty.

    The issuer's discovery document names the token endpoint the secret is sent to, so a
    new issuer is a new destination for the secret: whoever changes it must give the
    secret again, unless they may decrypt secrets anyway.
    """
    if "issuer" not in changed or not has_stored_secret or client_secret:
        return {}
    if authorize(actor, DECRYPT_PERMISSION).allowed:
        return {}
    message = (
        "A new issuer decides where the client secret is sent: give the client secret "
        "again in the same change."
    )
    return {"issuer": [message], "client_secret": ["Required when the issuer changes."]}


def identity_provider_delete(*, provider: IdentityProvider, actor: Actor) -> None:
    with transaction.atomic():
        secret_forget(owner=provider.secret_owner, actor=actor)
        publish(
            IdentityProviderDeleted(
                provider_id=provider.id,
                slug=provider.slug,
                actor_id=actor.user_id,
                ip_address=actor.ip_address,
            )
        )
        provider.delete()


def external_identity_unlink(*, identity: ExternalIdentity, actor: Actor) -> None:
    """Forget a link; that identity's next login links or signs up as on a first login."""
    with transaction.atomic():
        publish(
            ExternalIdentityUnlinked(
                user_id=identity.user_id,
                provider=identity.provider.slug,
                subject=identity.subject,
                actor_id=actor.user_id,
                ip_address=actor.ip_address,
            )
        )
        identity.delete()


# --- Login --------------------------------------------------------------------------------


def oidc_login_start(*, provider: IdentityProvider, request: HttpRequest, redirect_uri: str) -> str:
    """Remember state, nonce and PKCE verifier in the session; return the provider's URL."""
    try:
        client = _client(provider)
        # authlib's default nonce has ~119 bits; ASVS asks for at least 128.
        authorization = client.create_authorization_url(
            redirect_uri, nonce=secrets.token_urlsafe(32)
        )
        client.save_authorize_data(request, redirect_uri=redirect_uri, **authorization)
    except OidcLoginError as exc:
        _failed(provider, exc, request)
        raise
    return authorization["url"]


def oidc_login_complete(*, provider: IdentityProvider, request: HttpRequest) -> OidcLogin:
    """Finish the flow at the callback: check it, find or create the user, and say who.

    The caller logs the session in. Every refusal is published as ``OidcLoginFailed``.
    """
    try:
        claims = _verified_claims(provider, request)
        login = _login(provider, claims, ip_address=_ip(request))
    except OidcLoginError as exc:
        if exc.pending_link is not None:
            request.session[PENDING_LINK_SESSION_KEY] = exc.pending_link
        _failed(provider, exc, request)
        raise
    publish(
        OidcLoginSucceeded(
            user_id=login.user.pk,
            provider=provider.slug,
            subject=login.identity.subject,
            matched_by=login.matched_by,
            mfa_required=login.mfa_required,
            actor_id=login.user.pk,
            ip_address=_ip(request),
        )
    )
    return login


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _failed(provider: IdentityProvider, exc: OidcLoginError, request: HttpRequest) -> None:
    publish(
        OidcLoginFailed(
            provider=provider.slug, reason=exc.reason, subject=exc.subject, ip_address=_ip(request)
        )
    )
    logger.info("oidc login refused", provider=provider.slug, reason=exc.reason)


def _refused(reason: str, subject: str | None = None) -> OidcLoginError:
    return OidcLoginError(
        "The identity provider's answer could not be accepted.", reason=reason, subject=subject
    )


def _fetch_json(url: str) -> dict[str, Any]:
    with outbound.requests_session() as session:
        response = session.get(url, timeout=HTTP_TIMEOUT_SECONDS)
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def metadata_cache_key(discovery: str) -> str:
    return "security:oidc:metadata:" + hashlib.sha256(discovery.encode()).hexdigest()


def _server_metadata(provider: IdentityProvider) -> dict[str, Any]:
    """The provider's discovery document (with its JWKS), cached for a few minutes.

    Its ``issuer`` must be exactly the configured one (OpenID Connect Discovery §4.3),
    which also keeps a look-alike provider from answering for the real one.
    """
    url = discovery_url(provider.issuer)
    key = metadata_cache_key(url)
    metadata = cache.get(key)
    if metadata is None:
        try:
            document = _fetch_json(url)
            metadata = {name: document[name] for name in METADATA_FIELDS if name in document}
            if not all(isinstance(metadata.get(name), str) for name in REQUIRED_METADATA):
                raise ValueError("the discovery document lacks a required endpoint")
            algorithms = metadata.get("id_token_signing_alg_values_supported")
            if isinstance(algorithms, list):
                # Unsigned ID tokens are never acceptable, whatever the provider offers.
                metadata["id_token_signing_alg_values_supported"] = [
                    alg for alg in algorithms if isinstance(alg, str) and alg.lower() != "none"
                ]
            metadata["jwks"] = _fetch_json(metadata["jwks_uri"])
        except (requests.RequestException, ValueError) as exc:
            refusal = outbound.refusal_in(exc)
            logger.warning(
                "oidc discovery failed",
                provider=provider.slug,
                error=type(exc).__name__,
                refused=refusal.reason if refusal else None,
            )
            raise OidcLoginError(
                "The identity provider could not be reached.",
                reason="discovery_failed",
                status=502,
                code="identity_provider_unavailable",
            ) from None
        cache.set(key, metadata, METADATA_CACHE_SECONDS)
    if metadata.get("issuer") != provider.issuer:
        raise OidcLoginError(
            "The identity provider's issuer does not match its configuration.",
            reason="issuer_mismatch",
        )
    return metadata


class _GuardedOAuth2Session(OAuth2Session):
    """authlib's requests session for the token and UserInfo calls (and any JWKS refresh),
    through the outbound guard and following no redirect: a redirected token request
    would carry the client secret to wherever the redirect points."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        outbound.requests_session(session=self)


class _GuardedOAuth2App(DjangoOAuth2App):
    client_cls = _GuardedOAuth2Session


class _GuardedOAuth(OAuth):
    oauth2_client_cls = _GuardedOAuth2App


def _client(provider: IdentityProvider, *, client_secret: str | None = None) -> DjangoOAuth2App:
    # A registry per call: the client (and the secret it may hold) dies with the request.
    oauth = _GuardedOAuth()
    return oauth.register(
        name=f"lumina_oidc_{provider.slug}",
        client_id=provider.client_id,
        client_secret=client_secret,
        client_kwargs={
            "scope": provider.scopes,
            "code_challenge_method": "S256",
            "default_timeout": HTTP_TIMEOUT_SECONDS,
        },
        **_server_metadata(provider),
    )


def _verified_claims(provider: IdentityProvider, request: HttpRequest) -> dict[str, Any]:
    # RFC 9207: an authorization response naming another issuer is a mix-up attack.
    returned_issuer = request.GET.get("iss")
    if returned_issuer is not None and returned_issuer != provider.issuer:
        raise _refused("issuer_mismatch")
    try:
        secret = secret_decrypt(
            ciphertext=provider.client_secret_encrypted,
            owner=provider.secret_owner,
            actor=SYSTEM_ACTOR,
        )
    except ApplicationError:
        raise OidcLoginError(
            "The identity provider is not usable right now.",
            reason="client_secret_unavailable",
            status=503,
            code="identity_provider_unavailable",
        ) from None
    client = _client(provider, client_secret=secret)
    try:
        token = client.authorize_access_token(
            request,
            claims_options={
                "iss": {"essential": True, "value": provider.issuer},
                "aud": {"essential": True, "value": provider.client_id},
            },
            leeway=ID_TOKEN_LEEWAY_SECONDS,
        )
    except MismatchingStateError:
        raise OidcLoginError(
            "The login state is missing or does not match; start the login again.",
            reason="state_mismatch",
            status=400,
            code="invalid_state",
            fields={"state": ["does not match a login started in this session"]},
        ) from None
    except ClaimError as exc:
        raise _refused(f"invalid_id_token:{exc.claim}") from None
    except JoseError as exc:
        raise _refused(f"invalid_id_token:{exc.error}") from None
    except OAuthError as exc:
        raise _refused(f"provider_error:{exc.error}") from None
    except (requests.RequestException, ValueError) as exc:
        refused = "outbound_refused" if outbound.refusal_in(exc) else type(exc).__name__
        raise _refused(f"token_exchange_failed:{refused}") from None
    id_claims = token.get("userinfo")
    if not id_claims or not isinstance(id_claims.get("sub"), str):
        raise _refused("missing_id_token")
    if not 0 < len(id_claims["sub"]) <= SUBJECT_MAX_LENGTH:
        raise _refused("invalid_subject")
    claims = dict(id_claims)
    if "email" not in claims and client.server_metadata.get("userinfo_endpoint"):
        claims = _with_userinfo(client, token, claims)
    return claims


def _with_userinfo(
    client: DjangoOAuth2App, token: dict[str, Any], claims: dict[str, Any]
) -> dict[str, Any]:
    """Add the profile claims a conforming provider keeps out of the ID token (OIDC §5.4)."""
    try:
        userinfo = client.userinfo(token=token)
    except (OAuthError, requests.RequestException, ValueError) as exc:
        raise _refused(f"userinfo_failed:{type(exc).__name__}", claims["sub"]) from None
    # OIDC Core §5.3.2: a UserInfo answer about someone else must not be used.
    if userinfo.get("sub") != claims["sub"]:
        raise _refused("userinfo_subject_mismatch", claims["sub"])
    for name in ("email", "email_verified", "name"):
        if name in userinfo:
            claims.setdefault(name, userinfo[name])
    return claims


def _email_verified(claims: dict[str, Any]) -> bool:
    # Some providers send the boolean as a string.
    return claims.get("email_verified") in (True, "true")


def _login(
    provider: IdentityProvider, claims: dict[str, Any], *, ip_address: str | None
) -> OidcLogin:
    subject = claims["sub"]
    email = str(claims.get("email") or "").strip().lower()
    verified = _email_verified(claims)
    try:
        with transaction.atomic():
            identity = external_identity_for(provider=provider, subject=subject)
            if identity is not None:
                user, matched_by = identity.user, "subject"
            else:
                user, matched_by = _first_login_user(provider, claims, email, verified)
                identity = ExternalIdentity(
                    provider=provider, subject=subject, user=user, email_at_link=email
                )
            if not user.is_active:
                raise _refused("inactive_user", subject)
            _check_lock(user, subject, ip_address)
            identity.last_login_at = timezone.now()
            identity.save()
    except IntegrityError:
        # A concurrent first login linked this identity (or this user) a moment ago.
        raise _refused("concurrent_link", subject) from None
    return OidcLogin(
        user=user,
        identity=identity,
        matched_by=matched_by,
        mfa_required=user_has_confirmed_device(user=user),
    )


def _check_lock(user: User, subject: str, ip_address: str | None) -> None:
    """The password lockout holds for identity provider logins too."""
    guard = attempt_guard(scope="oidc", email=user.email, user=user, ip_address=ip_address)
    try:
        guard.check()
    except AccountLockedError as exc:
        raise OidcLoginError(
            exc.message,
            reason="account_locked",
            status=exc.status,
            code=exc.code,
            subject=subject,
            retry_after=exc.retry_after,
        ) from None
    guard.record_success()


def _needs_confirmation(user: User) -> bool:
    """Accounts an identity provider's word about an email is not enough to take over."""
    return user.is_staff or user.is_superuser or user_has_confirmed_device(user=user)


def _not_linked(
    provider: IdentityProvider, claims: dict[str, Any], email: str, verified: bool, reason: str
) -> OidcLoginError:
    """The one answer for every first login that finds no account to sign in to, whether
    or not an account has this email; ``reason`` is for the audit log only.

    When the provider links by verified email, the browser's session keeps a pending link
    whatever the reason, so nothing about the session differs either.
    """
    pending = None
    if email and verified and provider.link_by_verified_email:
        pending = {
            "provider_id": str(provider.id),
            "subject": claims["sub"],
            "email": email,
            "expires_at": timezone.now().timestamp() + PENDING_LINK_SECONDS,
        }
    return OidcLoginError(
        NOT_LINKED_MESSAGE,
        reason=reason,
        subject=claims["sub"],
        code="no_linked_account",
        pending_link=pending,
    )


def _first_login_user(
    provider: IdentityProvider, claims: dict[str, Any], email: str, verified: bool
) -> tuple[User, str]:
    existing = user_by_email(email=email) if email else None
    if existing is not None:
        if not (provider.link_by_verified_email and verified):
            raise _not_linked(provider, claims, email, verified, "account_not_linked")
        if existing.external_identities.filter(provider=provider).exists():
            raise _not_linked(provider, claims, email, verified, "already_linked")
        if _needs_confirmation(existing):
            raise _not_linked(provider, claims, email, verified, "link_needs_confirmation")
        return existing, "verified_email"
    if not provider.allow_signup:
        raise _not_linked(provider, claims, email, verified, "signup_closed")
    if not email or not verified:
        raise _not_linked(provider, claims, email, verified, "email_not_verified")
    try:
        user = user_create(email=email, password=None)
    except (ValidationError, ValueError):
        raise _refused("invalid_email", claims["sub"]) from None
    if name := str(claims.get("name") or "").strip():
        user.full_name = name[:200]
        user.save(update_fields=["full_name"])
    return user, "signup"


# --- Confirming a pending link ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PendingLink:
    provider: IdentityProvider
    subject: str
    email: str
    expires_at: float


def pending_link(session: Any) -> PendingLink | None:
    """The link an identity provider login left in this session, if still valid."""
    data = session.get(PENDING_LINK_SESSION_KEY)
    if not isinstance(data, dict):
        return None
    try:
        expires_at = float(data["expires_at"])
        provider = identity_provider_by_id(provider_id=uuid.UUID(data["provider_id"]))
        subject, email = str(data["subject"]), str(data["email"])
    except (KeyError, TypeError, ValueError):
        provider = None
    if provider is None or expires_at < timezone.now().timestamp():
        session.pop(PENDING_LINK_SESSION_KEY, None)
        return None
    return PendingLink(provider=provider, subject=subject, email=email, expires_at=expires_at)


def oidc_link_confirm(
    *, user: User, session: Any, password: str | None, ip_address: str | None
) -> ExternalIdentity:
    """Link the identity of this session's pending link to ``user``, who is logged in.

    The caller has already made sure the session is fully authenticated (second factor
    included). Users with a password give it again; wrong ones count towards the account
    lockout. The identity provider must have vouched for the user's own email.
    """
    pending = pending_link(session)
    if pending is None:
        raise NotFoundError(
            "There is no identity provider login waiting to be linked in this session.",
            code="no_pending_link",
        )
    provider = pending.provider

    def refuse(reason: str, error: ApplicationError) -> ApplicationError:
        publish(
            ExternalIdentityLinkRefused(
                user_id=user.pk,
                provider=provider.slug,
                subject=pending.subject,
                reason=reason,
                actor_id=user.pk,
                ip_address=ip_address,
            )
        )
        return error

    if user.has_usable_password():
        guard = attempt_guard(scope="login", email=user.email, user=user, ip_address=ip_address)
        guard.check()
        if not password or not user.check_password(password):
            error = refuse(
                "invalid_password",
                ApplicationError(
                    "The password is not correct.",
                    fields={"password": ["The password is not correct."]},
                    code="invalid_password",
                ),
            )
            guard.record_failure()
            raise error
        guard.record_success()
    if not provider.enabled or not provider.link_by_verified_email:
        raise refuse(
            "provider_does_not_link",
            ApplicationError(
                "This identity provider does not link accounts by email.",
                code="link_not_allowed",
            ),
        )
    if pending.email != user.email.strip().lower():
        raise refuse(
            "email_mismatch",
            ApplicationError(
                "The identity provider vouched for another email address than this account's.",
                code="link_not_allowed",
            ),
        )
    try:
        with transaction.atomic():
            identity = ExternalIdentity.objects.create(
                provider=provider, subject=pending.subject, user=user, email_at_link=pending.email
            )
            publish(
                ExternalIdentityLinked(
                    user_id=user.pk,
                    provider=provider.slug,
                    subject=pending.subject,
                    actor_id=user.pk,
                    ip_address=ip_address,
                )
            )
    except IntegrityError:
        raise refuse(
            "already_linked",
            ConflictError(
                "This identity, or another of this provider, is already linked to an account."
            ),
        ) from None
    session.pop(PENDING_LINK_SESSION_KEY, None)
    return identity
