"""Websocket consumers of the ui context: realtime document sync (y-websocket protocol)."""
