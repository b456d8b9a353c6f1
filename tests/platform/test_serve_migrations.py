"""``serve`` skips ``migrate`` (and the import of every migration module) when the
database has recorded every migration file; any missing one runs it."""

from __future__ import annotations

import pytest
from django.db import connection

from lumina.platform.management.commands.serve import migrations_pending


@pytest.mark.django_db
def test_an_up_to_date_database_needs_no_migrate():
    assert migrations_pending() is False


@pytest.mark.django_db
@pytest.mark.parametrize(("app", "name"), [("providers", "0001_initial"), ("auth", "0001_initial")])
def test_a_migration_file_the_database_has_not_recorded_needs_migrate(app, name):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = %s AND name = %s", [app, name])
        assert cursor.rowcount == 1  # the file exists and was recorded: the check is not blind

    assert migrations_pending() is True
