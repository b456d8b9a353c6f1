"""Realtime notifications: the topic registry, the on-commit fan-out through the channel
layer, and the watch that notices revoked access (``/ws/realtime/``, ADR 0023).

Other parts of the ui context register topics (``topics.register``) and push
notifications (``fanout.notify``) from their event handlers.
"""
