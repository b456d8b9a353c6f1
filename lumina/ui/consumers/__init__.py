"""Websocket consumers of the ui context (thin: protocol in, services and realtime out)."""
