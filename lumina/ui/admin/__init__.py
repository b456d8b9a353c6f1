"""Admin console pages of the ui context, one module per area."""

from lumina.ui.admin import documents, visualizations  # noqa: F401
