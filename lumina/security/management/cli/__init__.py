"""Sub-commands of ``manage.py security``, one module per area.

Each module has ``register(commands)``, which adds its parsers to the ``security``
command's sub-parsers and sets ``handler=function(command, **options)`` on each.
"""

from lumina.security.management.cli import audit, crypto, mfa, policies, rbac, tokens, users

AREAS = (users, crypto, audit, tokens, mfa, rbac, policies)
