"""The events the providers context publishes, one module per area."""

from lumina.providers.events.completion import *  # noqa: F403
from lumina.providers.events.registry import *  # noqa: F403
from lumina.providers.events.routing import *  # noqa: F403
from lumina.providers.events.usage import *  # noqa: F403
