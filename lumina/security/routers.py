"""The audit chain's own database connection (alias ``audit``, same database as ``default``).

Every read and write of ``AuditEntry`` goes through it, so appends commit in their own
short transactions: an entry recorded while a caller's transaction is open stays when
that transaction rolls back, and no caller's transaction ever holds the chain's lock.
Nothing is migrated through the alias (``default`` migrates the one database).
"""

from __future__ import annotations

AUDIT_DATABASE = "audit"
_AUDIT_MODELS = frozenset({"security.auditentry"})


def _is_audit(model) -> bool:
    return model._meta.label_lower in _AUDIT_MODELS


class AuditRouter:
    def db_for_read(self, model, **hints) -> str | None:
        return AUDIT_DATABASE if _is_audit(model) else None

    def db_for_write(self, model, **hints) -> str | None:
        return AUDIT_DATABASE if _is_audit(model) else None

    def allow_migrate(self, db: str, app_label: str, model_name=None, **hints) -> bool | None:
        # Also keeps `flush` (transactional tests' teardown) from emptying tables twice.
        return False if db == AUDIT_DATABASE else None
