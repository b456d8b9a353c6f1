"""REST endpoints for OAuth/OIDC login and identity providers under ``/api/v1/auth/oauth/``."""

from __future__ import annotations

import datetime

import django_otp
from django.contrib import auth
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.errors import NotFoundError
from lumina.kernel.lazy import lazy_module
from lumina.security.api.sign_in import SESSION_BACKEND
from lumina.security.http.actors import actor_of, client_ip
from lumina.security.http.auth import MeOutput, me_data
from lumina.security.http.permissions import IsFullyAuthenticated
from lumina.security.http.throttles import LoginAddressThrottle
from lumina.security.models.oidc import DEFAULT_SCOPES, IdentityProvider
from lumina.security.selectors.oidc import identity_provider_get, identity_provider_list
from lumina.security.services.authorization import require

# authlib and joserfc load with the first OIDC call, not with the URLconf.
services = lazy_module("lumina.security.services.oidc")

MANAGE_ACTION = "security.identity_providers.manage"
# Where to send the browser after the callback, when the login asked for it.
NEXT_SESSION_KEY = "lumina_oidc_next"


def _enabled_provider(slug: str) -> IdentityProvider:
    provider = identity_provider_get(slug=slug, enabled_only=True)
    if provider is None:
        raise NotFoundError(f"No enabled identity provider {slug!r}.")
    return provider


class OidcLoginApi(APIView):
    """Start logging in with an identity provider: redirects to its authorization page.

    State, nonce and the PKCE verifier are kept in the session; ``next`` (a path on this
    site) is where the callback sends the browser afterwards.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    error_statuses = (502,)  # the identity provider cannot be reached

    class QuerySerializer(serializers.Serializer):
        next = serializers.CharField(max_length=2000, required=False)

    @extend_schema(
        parameters=[QuerySerializer],
        responses={302: OpenApiResponse(description="To the provider's authorization page.")},
        auth=[],
    )
    def get(self, request, slug: str):
        provider = _enabled_provider(slug)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        next_url = query.validated_data.get("next")
        if next_url and not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            raise serializers.ValidationError({"next": ["must be a URL on this site"]})
        callback = reverse("v1:oidc-callback", kwargs={"slug": provider.slug})
        url = services.oidc_login_start(
            provider=provider,
            request=request._request,
            redirect_uri=request.build_absolute_uri(callback),
        )
        request.session[NEXT_SESSION_KEY] = next_url
        return HttpResponseRedirect(url)


class OidcCallbackApi(APIView):
    """Where the provider sends the browser back: checks the answer and logs the session in.

    A user with a confirmed MFA device gets a partially authenticated session
    (``mfa_required``) until ``/auth/mfa/verify`` accepts a code.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginAddressThrottle]
    error_statuses = (502,)  # the identity provider cannot be reached

    @extend_schema(
        parameters=[
            OpenApiParameter("code", str, OpenApiParameter.QUERY),
            OpenApiParameter("state", str, OpenApiParameter.QUERY),
        ],
        responses={
            200: MeOutput,
            302: OpenApiResponse(description="To the ``next`` given at login."),
        },
        auth=[],
    )
    def get(self, request, slug: str):
        provider = _enabled_provider(slug)
        next_url = request.session.pop(NEXT_SESSION_KEY, None)
        login = services.oidc_login_complete(provider=provider, request=request._request)
        # A new login always starts without a verified second factor.
        request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
        auth.login(request, login.user, backend=SESSION_BACKEND)
        if next_url:
            return HttpResponseRedirect(next_url)
        return Response(MeOutput(me_data(request, mfa_required=login.mfa_required)).data)


class PendingLinkOutput(serializers.Serializer):
    provider = serializers.SlugField(source="provider.slug")
    provider_name = serializers.CharField(source="provider.display_name")
    email = serializers.EmailField(help_text="The email the identity provider vouched for.")
    expires_at = serializers.SerializerMethodField()

    def get_expires_at(self, pending) -> str:
        return datetime.datetime.fromtimestamp(pending.expires_at, tz=datetime.UTC).isoformat()


class LinkedIdentityOutput(serializers.Serializer):
    provider = serializers.SlugField(source="provider.slug")
    subject = serializers.CharField()
    email_at_link = serializers.EmailField()
    created_at = serializers.DateTimeField()


class OidcLinkApi(APIView):
    """A pending link: an identity provider login that found an account which must confirm
    the link itself (staff, superusers, accounts with MFA) waits in this browser's session.

    GET shows it; POST links it to the logged-in account, which must be the one whose email
    the provider vouched for. Session only, fully authenticated (second factor included),
    and the password again for accounts that have one.
    """

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsFullyAuthenticated]

    def get_throttles(self):
        # Confirming checks a password: it counts like a login attempt.
        return [LoginAddressThrottle()] if self.request.method == "POST" else []

    class InputSerializer(serializers.Serializer):
        password = serializers.CharField(
            max_length=4096,
            trim_whitespace=False,
            required=False,
            write_only=True,
            style={"input_type": "password"},
            help_text="The account's password (required when it has one).",
        )

    @extend_schema(
        responses={
            200: PendingLinkOutput,
            403: OpenApiResponse(description="Not logged in, or the second factor is missing."),
            404: OpenApiResponse(description="No pending link in this session."),
        }
    )
    def get(self, request):
        pending = services.pending_link(request.session)
        if pending is None:
            raise NotFoundError(
                "There is no identity provider login waiting to be linked in this session.",
                code="no_pending_link",
            )
        return Response(PendingLinkOutput(pending).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: LinkedIdentityOutput,
            400: OpenApiResponse(
                description="Wrong password (naming password), or another email than the "
                "account's (link_not_allowed)."
            ),
            403: OpenApiResponse(description="Not logged in, or the second factor is missing."),
            404: OpenApiResponse(description="No pending link in this session."),
            409: OpenApiResponse(description="The identity is already linked."),
            429: OpenApiResponse(description="Too many attempts, or the account is locked."),
        },
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        identity = services.oidc_link_confirm(
            user=request.user,
            session=request.session,
            password=data.validated_data.get("password"),
            ip_address=client_ip(request),
        )
        return Response(LinkedIdentityOutput(identity).data, status=status.HTTP_201_CREATED)


# --- Identity providers (administrators) ------------------------------------------------


@extend_schema_serializer(component_name="IdentityProvider")
class ProviderOutput(serializers.Serializer):
    id = serializers.UUIDField()
    slug = serializers.SlugField()
    display_name = serializers.CharField()
    issuer = serializers.URLField()
    client_id = serializers.CharField()
    has_client_secret = serializers.SerializerMethodField()
    scopes = serializers.CharField()
    enabled = serializers.BooleanField()
    allow_signup = serializers.BooleanField()
    link_by_verified_email = serializers.BooleanField()
    login_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_has_client_secret(self, provider: IdentityProvider) -> bool:
        return bool(provider.client_secret_encrypted)

    def get_login_url(self, provider: IdentityProvider) -> str:
        return reverse("v1:oidc-login", kwargs={"slug": provider.slug})


@extend_schema_serializer(component_name="IdentityProviderInput")
class ProviderInput(serializers.Serializer):
    slug = serializers.SlugField(max_length=50)
    display_name = serializers.CharField(max_length=100)
    issuer = serializers.URLField(max_length=500)
    client_id = serializers.CharField(max_length=255)
    client_secret = serializers.CharField(
        max_length=4096, trim_whitespace=False, write_only=True, help_text="Write-only."
    )
    scopes = serializers.CharField(max_length=500, default=DEFAULT_SCOPES)
    enabled = serializers.BooleanField(default=True)
    allow_signup = serializers.BooleanField(default=False)
    link_by_verified_email = serializers.BooleanField(default=False)


@extend_schema_serializer(component_name="IdentityProviderUpdateInput")
class ProviderUpdateInput(ProviderInput):
    slug = None  # the slug is part of the callback URL registered at the provider

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, partial=True, **kwargs)


class ProviderAdminApi(APIView):
    permission_classes = [IsFullyAuthenticated]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        require(actor_of(request), MANAGE_ACTION)

    @staticmethod
    def provider(provider_id) -> IdentityProvider:
        provider = identity_provider_list().filter(pk=provider_id).first()
        if provider is None:
            raise NotFoundError(f"No identity provider {provider_id}.")
        return provider


class ProviderListApi(ProviderAdminApi):
    """Identity providers users may log in with (list), or add one (the secret is write-only)."""

    @extend_schema(responses=ProviderOutput(many=True))
    def get(self, request):
        return Response(ProviderOutput(identity_provider_list(), many=True).data)

    @extend_schema(request=ProviderInput, responses={201: ProviderOutput})
    def post(self, request):
        data = ProviderInput(data=request.data)
        data.is_valid(raise_exception=True)
        provider = services.identity_provider_create(**data.validated_data, actor=actor_of(request))
        return Response(ProviderOutput(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetailApi(ProviderAdminApi):
    """One identity provider: read, change (a new ``client_secret`` replaces the old), delete."""

    @extend_schema(responses=ProviderOutput)
    def get(self, request, provider_id):
        return Response(ProviderOutput(self.provider(provider_id)).data)

    @extend_schema(request=ProviderUpdateInput, responses=ProviderOutput)
    def patch(self, request, provider_id):
        provider = self.provider(provider_id)
        data = ProviderUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        provider = services.identity_provider_update(
            provider=provider, actor=actor_of(request), **data.validated_data
        )
        return Response(ProviderOutput(provider).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, provider_id):
        services.identity_provider_delete(
            provider=self.provider(provider_id), actor=actor_of(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("auth/oauth/providers", ProviderListApi.as_view(), name="oidc-provider-list"),
    path(
        "auth/oauth/providers/<uuid:provider_id>",
        ProviderDetailApi.as_view(),
        name="oidc-provider-detail",
    ),
    path("auth/oauth/link", OidcLinkApi.as_view(), name="oidc-link"),
    path("auth/oauth/<slug:slug>/login", OidcLoginApi.as_view(), name="oidc-login"),
    path("auth/oauth/<slug:slug>/callback", OidcCallbackApi.as_view(), name="oidc-callback"),
]
