"""The events the tools context publishes, one module per area."""

from lumina.tools.events.executions import *  # noqa: F403
from lumina.tools.events.registry import *  # noqa: F403
