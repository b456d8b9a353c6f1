"""Sub-commands of ``manage.py documents``, one module per area.

Each module has ``register(commands)``, which adds its parsers to the ``documents``
command's sub-parsers and sets ``handler=function(command, **options)`` on each.
"""

from lumina.ui.management.cli import documents

AREAS = (documents,)
