"""The ui context's data."""

from lumina.ui.models.visualizations import Visualization

__all__ = ["Visualization"]
