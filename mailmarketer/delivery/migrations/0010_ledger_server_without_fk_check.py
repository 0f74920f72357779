"""Drop the database's foreign-key constraint of the ledger's server column on PostgreSQL
(models.py says why), as 0008 did for workspace and campaign. SQLite keeps it: changing a
constraint there means remaking the table (which would also drop the ledger-count triggers of
0006)."""

import django.db.models.deletion
from django.db import migrations, models


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "delivery_delivery")
    for name, info in constraints.items():
        if info["foreign_key"] and info["columns"] == ["server_id"]:
            schema_editor.execute(
                f"ALTER TABLE delivery_delivery DROP CONSTRAINT {schema_editor.quote_name(name)}"
            )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # Rows recorded after their relay was deleted (see models.py) would fail the constraint.
    schema_editor.execute(
        "UPDATE delivery_delivery SET server_id = NULL WHERE server_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM delivery_smtpserver s WHERE s.id = server_id)"
    )
    schema_editor.execute(
        "ALTER TABLE delivery_delivery ADD CONSTRAINT delivery_delivery_server_id_fk"
        " FOREIGN KEY (server_id) REFERENCES delivery_smtpserver (id) DEFERRABLE INITIALLY DEFERRED"
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
            ],
        ),
    ]
