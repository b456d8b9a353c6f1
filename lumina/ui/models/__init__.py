"""The ui context's tables, one module per area."""

from lumina.ui.models.documents import *  # noqa: F403
from lumina.ui.models.visualizations import Visualization  # noqa: F401
