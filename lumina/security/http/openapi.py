"""The API token's security scheme in the OpenAPI document.

drf-spectacular loads this module when it builds a document (``register_token_scheme`` is a
preprocessing hook in ``SPECTACULAR_SETTINGS``), not with the authentication class: its
extension machinery brings ``django.test`` and ``unittest`` (~2 MiB) into every process
that serves requests, which never needs them.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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


def register_token_scheme(endpoints):
    """Importing this module registered the scheme; the endpoints pass unchanged."""
    return endpoints
