"""Routes of the web console, mounted at ``/console/``."""

from django.urls import path

from lumina.ui.console import views

app_name = "console"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", views.login, name="login"),
    path("tokens/", views.tokens, name="tokens"),
    path("playground/", views.playground, name="playground"),
    path("playground/stream", views.playground_stream, name="playground-stream"),
    path("providers/", views.providers, name="providers"),
    path("tools/", views.tools, name="tools"),
    path("memory/", views.memory, name="memory"),
    path("documents/", views.documents, name="documents"),
]
