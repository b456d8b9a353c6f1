"""Websocket routes of the ui context, gathered into ``config.routing``."""

from django.urls import path

from lumina.ui.consumers.realtime import RealtimeConsumer

websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
]
