"""Sub-commands of ``manage.py memory``, one module per area.

Each module has ``register(commands)``, which adds its parsers to the ``memory``
command's sub-parsers and sets ``handler=function(command, **options)`` on each.
``stats`` is shared: each area adds a function to ``STATS`` returning its lines.
"""

from collections.abc import Callable

STATS: list[Callable[[], list[str]]] = []

AREAS: list = []

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.management.cli import vectors as _vectors  # noqa: E402

AREAS.append(_vectors)
STATS.append(_vectors.stats_lines)

# --- Memory records, import, consolidate, purge (mc) --------------------------------------
from lumina.memory.management.cli import records as _records  # noqa: E402

AREAS.append(_records)
STATS.append(_records.stats_lines)

# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.management.cli import topics as _topics  # noqa: E402

AREAS.append(_topics)
STATS.append(_topics.stats_lines)
