"""Indexes of the query engine on PostgreSQL (DESIGN §4): ``varchar_pattern_ops`` b-trees so
prefix matching (``LIKE 'smi%'``, PS3.4 C.2.2.2.4 wildcards with a trailing ``*`` and the
console's default search) uses an index whatever the database collation, and a trigram GIN
index (pg_trgm) for "contains" name search. SQLite needs none of these: the migration does
nothing there. If the pg_trgm extension cannot be created (no privilege), the trigram index
is skipped with a notice and everything else still works."""

from __future__ import annotations

from django.db import migrations, transaction

_PATTERN_INDEXES = (
    ("studies_patient_name_search_like", "studies_patient", "patient_name_search"),
    ("studies_patient_patient_id_like", "studies_patient", "patient_id"),
    ("studies_study_accession_number_like", "studies_study", "accession_number"),
)
_TRIGRAM_INDEX = "studies_patient_name_search_trgm"


def create_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, table, column in _PATTERN_INDEXES:
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column} varchar_pattern_ops)"
            )
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {_TRIGRAM_INDEX} ON studies_patient "
                    "USING gin (patient_name_search gin_trgm_ops)"
                )
        except Exception as exc:  # no privilege to create the extension
            print(f"\n  Skipping the trigram index of patient names: {exc}")


def drop_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in [name for name, _table, _column in _PATTERN_INDEXES] + [_TRIGRAM_INDEX]:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("studies", "0001_initial")]

    operations = [migrations.RunPython(create_indexes, drop_indexes)]
