"""Lumina: a self-hostable AI platform backend."""
