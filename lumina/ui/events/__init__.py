"""The events the ui context publishes, one module per area."""

from lumina.ui.events.documents import *  # noqa: F403
