"""Websocket routes under ``/ws/``, gathered from the contexts that serve them."""

websocket_urlpatterns: list = []
