"""Websocket routes of the ui context, gathered into ``config.routing``."""

from django.urls import path, re_path

from lumina.ui.consumers.documents import DocumentConsumer
from lumina.ui.consumers.realtime import RealtimeConsumer

# Any document id reaches the consumer, which answers one that is not a document with close
# code 4404 rather than a bare handshake refusal.
websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
    re_path(r"^ws/documents/(?P<document_id>[^/]+)/$", DocumentConsumer.as_asgi()),
]
