"""Sub-commands of ``manage.py tools``, one module per area.

Each module has ``register(commands)``, which adds its parsers to the ``tools`` command's
sub-parsers and sets ``handler=function(command, **options)`` on each.
"""

from lumina.tools.management.cli import mcp, registry, runs

AREAS = (registry, runs, mcp)
