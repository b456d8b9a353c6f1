"""OAuth/OIDC login use-cases: identity providers, and the authorization code flow with PKCE.

authlib's Django client does the protocol work: state, nonce and PKCE kept in the
session, the code exchange, and ID token checks (JWKS signature, issuer, audience,
nonce, expiry). The client secret is decrypted only for the code exchange and lives
only in that request's memory; it and the tokens are never logged or published.
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
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from joserfc.errors import ClaimError, JoseError

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError
from lumina.security.events.oidc import (
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
from lumina.security.selectors.oidc import external_identity_for, user_by_email
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
    ) -> None:
        super().__init__(message, fields=fields, code=code)
        self.reason = reason
        self.subject = subject
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
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
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
    _check(issuer=changes.get("issuer"), scopes=changes.get("scopes"))
    changed = [name for name, value in changes.items() if getattr(provider, name) != value]
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
        login = _login(provider, claims)
    except OidcLoginError as exc:
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
    response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
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
            logger.warning(
                "oidc discovery failed", provider=provider.slug, error=type(exc).__name__
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


def _client(provider: IdentityProvider, *, client_secret: str | None = None) -> DjangoOAuth2App:
    # A registry per call: the client (and the secret it may hold) dies with the request.
    oauth = OAuth()
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
        raise _refused(f"token_exchange_failed:{type(exc).__name__}") from None
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


def _login(provider: IdentityProvider, claims: dict[str, Any]) -> OidcLogin:
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


def _first_login_user(
    provider: IdentityProvider, claims: dict[str, Any], email: str, verified: bool
) -> tuple[User, str]:
    subject = claims["sub"]
    existing = user_by_email(email=email) if email else None
    if existing is not None:
        if provider.link_by_verified_email and verified:
            if existing.external_identities.filter(provider=provider).exists():
                raise _refused("already_linked", subject)
            return existing, "verified_email"
        raise OidcLoginError(
            "An account with this email exists but is not linked to this identity provider.",
            reason="account_not_linked",
            subject=subject,
            code="account_not_linked",
        )
    if not provider.allow_signup:
        raise OidcLoginError(
            "No account is linked to this identity and sign-up is closed.",
            reason="signup_closed",
            subject=subject,
            code="signup_closed",
        )
    if not email or not verified:
        raise OidcLoginError(
            "Signing up needs an email address the identity provider has verified.",
            reason="email_not_verified",
            subject=subject,
            code="email_not_verified",
        )
    try:
        user = user_create(email=email, password=None)
    except (ValidationError, ValueError):
        raise _refused("invalid_email", subject) from None
    if name := str(claims.get("name") or "").strip():
        user.full_name = name[:200]
        user.save(update_fields=["full_name"])
    return user, "signup"
