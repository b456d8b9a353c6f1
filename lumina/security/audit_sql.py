"""SQL that makes the audit table append-only in the database itself.

A trigger refuses UPDATE and DELETE on every row and TRUNCATE on the table, whoever
issues them (the ORM, raw SQL, a console). Each constant is a list of statements,
ready for ``migrations.RunSQL(AUDIT_APPEND_ONLY_SQL, AUDIT_APPEND_ONLY_REVERSE_SQL)``.
"""

from __future__ import annotations

AUDIT_TABLE = "security_auditentry"
AUDIT_REFUSE_FUNCTION = "security_audit_refuse_change"
AUDIT_ROW_TRIGGER = "security_auditentry_no_update_delete"
AUDIT_TRUNCATE_TRIGGER = "security_auditentry_no_truncate"

AUDIT_APPEND_ONLY_SQL: list[str] = [
    f"""
    CREATE OR REPLACE FUNCTION {AUDIT_REFUSE_FUNCTION}() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END;
    $$
    """,
    f"DROP TRIGGER IF EXISTS {AUDIT_ROW_TRIGGER} ON {AUDIT_TABLE}",
    f"""
    CREATE TRIGGER {AUDIT_ROW_TRIGGER}
        BEFORE UPDATE OR DELETE ON {AUDIT_TABLE}
        FOR EACH ROW EXECUTE FUNCTION {AUDIT_REFUSE_FUNCTION}()
    """,
    f"DROP TRIGGER IF EXISTS {AUDIT_TRUNCATE_TRIGGER} ON {AUDIT_TABLE}",
    f"""
    CREATE TRIGGER {AUDIT_TRUNCATE_TRIGGER}
        BEFORE TRUNCATE ON {AUDIT_TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT_REFUSE_FUNCTION}()
    """,
]

AUDIT_APPEND_ONLY_REVERSE_SQL: list[str] = [
    f"DROP TRIGGER IF EXISTS {AUDIT_TRUNCATE_TRIGGER} ON {AUDIT_TABLE}",
    f"DROP TRIGGER IF EXISTS {AUDIT_ROW_TRIGGER} ON {AUDIT_TABLE}",
    f"DROP FUNCTION IF EXISTS {AUDIT_REFUSE_FUNCTION}()",
]
