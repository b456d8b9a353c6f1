"""Providers context: AI provider registry, selection, completions, usage and cost."""
