"""Drop the database's foreign-key constraints of the ledger's server and subscriber columns on
PostgreSQL (models.py says why), as 0008 did for workspace and campaign; the subscriber index
stays (a person's rows are found by it). SQLite keeps them: changing a constraint there means
remaking the table (which would also drop the ledger-count triggers of 0006)."""

import django.db.models.deletion
from django.db import migrations, models

# column -> the table it refers to
COLUMNS = {"server_id": "delivery_smtpserver", "subscriber_id": "audience_subscriber"}


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "delivery_delivery")
    for name, info in constraints.items():
        if info["foreign_key"] and len(info["columns"]) == 1 and info["columns"][0] in COLUMNS:
            schema_editor.execute(
                f"ALTER TABLE delivery_delivery DROP CONSTRAINT {schema_editor.quote_name(name)}"
            )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column, table in COLUMNS.items():
        # Rows of a relay or a person deleted without the constraint (see models.py) would
        # fail it.
        schema_editor.execute(
            f"UPDATE delivery_delivery SET {column} = NULL WHERE {column} IS NOT NULL"  # noqa: S608
            f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = {column})"
        )
        schema_editor.execute(
            f"ALTER TABLE delivery_delivery ADD CONSTRAINT delivery_delivery_{column}_fk"
            f" FOREIGN KEY ({column}) REFERENCES {table} (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0009_ledger_claim_queued_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="server",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="delivery.smtpserver",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="deliveries",
                        to="audience.subscriber",
                    ),
                ),
            ],
        ),
    ]
