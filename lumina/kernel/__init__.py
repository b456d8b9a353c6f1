"""Shared kernel: event bus and outbox, errors, and helpers every context may use.

The kernel imports no context.
"""
