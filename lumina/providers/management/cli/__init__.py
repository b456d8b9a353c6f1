"""Sub-commands of ``manage.py providers``, one module per area.

Each module has ``register(commands)``, which adds its parsers to the ``providers``
command's sub-parsers and sets ``handler=function(command, **options)`` on each.
"""

from lumina.providers.management.cli import costs, probe, registry

AREAS = (registry, probe, costs)
