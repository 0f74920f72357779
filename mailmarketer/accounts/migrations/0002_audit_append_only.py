"""On PostgreSQL, a trigger makes the audit log append-only in the database itself, so not even
raw SQL from a compromised or careless code path can rewrite history. (TRUNCATE, which only the
table owner can run, is left to the operator: the test runner uses it to reset tables.)

SQLite gets no trigger: the embedded default is one machine where whoever can write the file can
also drop a trigger, and test isolation there deletes rows between tests.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION mm_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER accounts_auditevent_append_only
    BEFORE UPDATE OR DELETE ON accounts_auditevent
    FOR EACH ROW EXECUTE FUNCTION mm_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS accounts_auditevent_append_only ON accounts_auditevent;
DROP FUNCTION IF EXISTS mm_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
