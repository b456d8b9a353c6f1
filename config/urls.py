"""Top-level routes. Contexts add their REST endpoints under ``/api/v1/``."""

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from lumina.providers.http.gateway_schema import gateway_schema


def _loaded_on_first_request(view_class: str, **initkwargs):
    """A drf-spectacular view, imported when first asked for: its generator, inspectors and
    extensions (several MiB) stay out of a serving process until someone reads the docs."""
    view = None

    def lazy_view(request, *args, **kwargs):
        nonlocal view
        if view is None:
            from drf_spectacular import views

            view = getattr(views, view_class).as_view(**initkwargs)
        return view(request, *args, **kwargs)

    return csrf_exempt(lazy_view)  # as DRF's views are: they authenticate on their own


api_v1 = [
    path("", include("lumina.platform.http.urls")),
    path("", include("lumina.security.http.urls")),
    path("", include("lumina.providers.http.urls")),
    path("", include("lumina.memory.http.urls")),
    path("", include("lumina.tools.http.urls")),
    path("", include("lumina.ui.http.urls")),
    path("", include("lumina.ui.http.visualization_urls")),
]

urlpatterns = [
    path("", include("lumina.platform.urls")),
    path("admin/", admin.site.urls),
    # The web console (lumina.ui.console): pages for everyday work, beside the admin.
    path("console/", include("lumina.ui.console.urls")),
    # The page a password reset link opens (lumina.security.http.pages).
    path("accounts/", include("lumina.security.http.pages")),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", _loaded_on_first_request("SpectacularAPIView"), name="schema"),
    path("api/schema/gateway/", gateway_schema, name="schema-gateway"),
    path(
        "api/docs/",
        _loaded_on_first_request("SpectacularSwaggerView", url_name="schema"),
        name="api-docs",
    ),
]

handler400 = "lumina.platform.http.errors.bad_request"
handler403 = "lumina.platform.http.errors.permission_denied"
handler404 = "lumina.platform.http.errors.page_not_found"
handler500 = "lumina.platform.http.errors.server_error"
