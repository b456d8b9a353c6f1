"""The speaker joins a record's text index (ADR 0038).

PostgreSQL cannot change a generated column's expression in place: the column and its
GIN index are dropped and made again, which rewrites the table once.
"""

import django.contrib.postgres.search
from django.db import migrations, models

_REBUILD = """
DROP INDEX IF EXISTS memrec_search_gin;
ALTER TABLE memory_memoryrecord DROP COLUMN search;
ALTER TABLE memory_memoryrecord ADD COLUMN search tsvector GENERATED ALWAYS AS ({}) STORED;
CREATE INDEX memrec_search_gin ON memory_memoryrecord USING gin (search)
    WHERE expired_at IS NULL;
"""
_TEXT = "to_tsvector('english'::regconfig, COALESCE(text, ''))"
_SPEAKER = "to_tsvector('english'::regconfig, COALESCE(speaker, ''))"


def _vector(field: str, weight: str) -> django.contrib.postgres.search.SearchVector:
    return django.contrib.postgres.search.SearchVector(field, config="english", weight=weight)


class Migration(migrations.Migration):
    dependencies = [("memory", "0010_collection_hnsw_defaults")]

    operations = [
        migrations.RunSQL(
            _REBUILD.format(f"setweight({_TEXT}, 'C') || setweight({_SPEAKER}, 'D')"),
            reverse_sql=_REBUILD.format(_TEXT),
            state_operations=[
                migrations.AlterField(
                    model_name="memoryrecord",
                    name="search",
                    field=models.GeneratedField(
                        db_persist=True,
                        expression=django.contrib.postgres.search.CombinedSearchVector(
                            _vector("text", "C"),
                            "||",
                            _vector("speaker", "D"),
                            django.contrib.postgres.search.SearchConfig("english"),
                        ),
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                )
            ],
        )
    ]
