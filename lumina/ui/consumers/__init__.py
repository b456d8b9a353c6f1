"""Websocket consumers of the ui context: document sync (y-websocket protocol) and realtime
notifications. Thin: protocol in, services out."""
