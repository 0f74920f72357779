"""PostgreSQL only: trigram indexes, so that finding people by a substring of their address or
name ("contains", and a segment's "ends with @example.com") does not read every row.

The expressions are exactly what Django writes for icontains/iendswith/istartswith on
PostgreSQL, UPPER("column"::text), or the planner would not use them (a test checks this with
EXPLAIN). pg_trgm is a trusted extension, but creating it still needs CREATE on the database;
where the role lacks it, the migration logs a warning and goes on: search still works, by
scanning, and an administrator can run `CREATE EXTENSION pg_trgm` and migrate again
(audience 0004 backwards, then forwards) to add the indexes. SQLite gets nothing: it has no
such index, and its LIKE scans are fast at the sizes SQLite is meant for.
"""

import logging

from django.db import DatabaseError, migrations, transaction

log = logging.getLogger("mailmarketer.audience.migrations")

INDEXES = {
    "subscriber_email_trgm": (
        "CREATE INDEX IF NOT EXISTS subscriber_email_trgm ON audience_subscriber "
        "USING gin ((UPPER(email::text)) gin_trgm_ops)"
    ),
    "subscriber_name_trgm": (
        "CREATE INDEX IF NOT EXISTS subscriber_name_trgm ON audience_subscriber "
        "USING gin ((UPPER(name::text)) gin_trgm_ops)"
    ),
}


def has_trigram_extension(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone():
            return True
    try:
        # A savepoint: a refusal must not abort the migration's transaction.
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        log.warning(
            "pg_trgm is not installed and could not be created (%s); subscriber search will "
            "scan instead of using trigram indexes. Run CREATE EXTENSION pg_trgm as a "
            "privileged role, then re-run audience migration 0004.",
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        return False
    return True


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    if not has_trigram_extension(schema_editor):
        return
    for sql in INDEXES.values():
        schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("audience", "0003_segment")]
    operations = [migrations.RunPython(forwards, backwards)]
