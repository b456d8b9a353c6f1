"""The metadata filter compiler lives with the read queries; re-exported for services."""

from lumina.memory.selectors.vector_filters import CompiledFilter, compile_filter

__all__ = ["CompiledFilter", "compile_filter"]
