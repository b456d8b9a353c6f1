"""Security's routes under /api/v1/, gathered from each area's module."""

from lumina.security.http import (
    audit,
    auth,
    crypto,
    mfa,
    oidc,
    passwords,
    policies,
    rbac,
    sessions,
    tokens,
)

urlpatterns: list = []
urlpatterns += crypto.urlpatterns
urlpatterns += audit.urlpatterns
urlpatterns += auth.urlpatterns
urlpatterns += tokens.urlpatterns
urlpatterns += mfa.urlpatterns
urlpatterns += oidc.urlpatterns
urlpatterns += rbac.urlpatterns
urlpatterns += policies.urlpatterns
urlpatterns += sessions.urlpatterns
urlpatterns += passwords.urlpatterns
