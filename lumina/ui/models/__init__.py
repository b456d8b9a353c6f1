"""The ui context's tables, one module per area."""

from lumina.ui.models.documents import *  # noqa: F403
