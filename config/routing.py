"""Websocket routes under ``/ws/``, gathered from the contexts that serve them."""

from lumina.ui.routing import websocket_urlpatterns as ui_websocket_urlpatterns

websocket_urlpatterns: list = [*ui_websocket_urlpatterns]
