"""The database refuses UPDATE, DELETE and TRUNCATE on the audit log."""

from django.db import migrations

from lumina.security.audit_sql import AUDIT_APPEND_ONLY_REVERSE_SQL, AUDIT_APPEND_ONLY_SQL


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0002_security_areas"),
    ]

    operations = [
        migrations.RunSQL(AUDIT_APPEND_ONLY_SQL, AUDIT_APPEND_ONLY_REVERSE_SQL),
    ]
