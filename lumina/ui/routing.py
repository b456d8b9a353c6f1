"""The ui context's websocket routes (gathered by ``config.routing``)."""

from django.urls import re_path

from lumina.ui.consumers.documents import DocumentConsumer

# Any id reaches the consumer, which answers one that is not a document with close code
# 4404 rather than a bare handshake refusal.
websocket_urlpatterns = [
    re_path(r"^ws/documents/(?P<document_id>[^/]+)/$", DocumentConsumer.as_asgi()),
]
