"""The base of this context's websocket consumers.

A client can vanish between the moment a message is queued for it and the moment it is
written (a closed tab, a dropped network). uvicorn then raises ``ClientDisconnected``, an
``OSError``, from ``send``; it has already queued the ``websocket.disconnect`` that runs
the consumer's clean-up. Raised out of a handler, the error would end the consumer before
that message is read, leaving its room membership, presence and background tasks behind.
"""

from __future__ import annotations

from channels.consumer import AsyncConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class _SendsToGoneClientsDropped(AsyncConsumer):
    async def send(self, message: dict) -> None:
        try:
            await super().send(message)
        except OSError:
            # The client is gone; its websocket.disconnect follows.
            return


class WebsocketConsumer(AsyncWebsocketConsumer, _SendsToGoneClientsDropped):
    """``AsyncWebsocketConsumer`` whose sends (frames, accept, close) to a client that has
    gone are dropped rather than raised; ``disconnect`` still runs."""
