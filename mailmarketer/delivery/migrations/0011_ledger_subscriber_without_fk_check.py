"""Drop the database's foreign-key constraint of the ledger's subscriber column on PostgreSQL
(models.py says why); its index stays (a person's rows are found by it). SQLite keeps the
constraint: changing it there means remaking the table (which would also drop the ledger-count
triggers of 0006)."""

import django.db.models.deletion
from django.db import migrations, models


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "delivery_delivery")
    for name, info in constraints.items():
        if info["foreign_key"] and info["columns"] == ["subscriber_id"]:
            schema_editor.execute(
                f"ALTER TABLE delivery_delivery DROP CONSTRAINT {schema_editor.quote_name(name)}"
            )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # Rows of people deleted without the constraint (see models.py) would fail it.
    schema_editor.execute(
        "UPDATE delivery_delivery SET subscriber_id = NULL WHERE subscriber_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM audience_subscriber s WHERE s.id = subscriber_id)"
    )
    schema_editor.execute(
        "ALTER TABLE delivery_delivery ADD CONSTRAINT delivery_delivery_subscriber_id_fk"
        " FOREIGN KEY (subscriber_id) REFERENCES audience_subscriber (id)"
        " DEFERRABLE INITIALLY DEFERRED"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0010_ledger_server_without_fk_check"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
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
