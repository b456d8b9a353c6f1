"""DRF authentication by API token: ``Authorization: Bearer lum_…``.

On success ``request.user`` is the token's user and ``request.auth`` the token's
``TokenInfo``, from which ``actor_of`` takes the token id and scopes. Any other
``Authorization`` scheme is left to the next authentication class.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from lumina.security.api.actors import client_ip
from lumina.security.services import token_refusals
from lumina.security.services.tokens import InvalidTokenError, token_authenticate

KEYWORD = "bearer"


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        parts = header.split()
        if not parts or parts[0].lower() != KEYWORD:
            return None
        if len(parts) != 2:
            token_refusals.refusal_record(
                reason="malformed", raw=" ".join(parts[1:]), ip_address=client_ip(request)
            )
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <token>'.",
                code="malformed_token",
            )
        try:
            return token_authenticate(raw=parts[1], ip_address=client_ip(request))
        except InvalidTokenError as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None

    def authenticate_header(self, request) -> str:
        # Makes DRF answer unauthenticated requests 401 with this challenge (RFC 6750).
        return 'Bearer realm="lumina"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "lumina.security.http.authentication.TokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "lum_<43 url-safe characters>",
            "description": "A personal API token from POST /api/v1/auth/tokens or the CLI.",
        }
