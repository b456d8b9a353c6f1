"""The providers context's tables: the registry, seed marks and the usage ledger."""

from lumina.providers.models.registry import *  # noqa: F403
from lumina.providers.models.seeds import *  # noqa: F403
from lumina.providers.models.usage import *  # noqa: F403
