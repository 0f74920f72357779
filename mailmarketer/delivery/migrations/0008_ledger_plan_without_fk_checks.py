"""Drop the database's foreign-key constraints of the ledger's workspace and campaign columns on
PostgreSQL (models.py says why). SQLite keeps them: changing a constraint there means remaking
the table (which would also drop the ledger-count triggers of 0006), and SQLite's sending is not
bound by them."""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = {
    "workspace_id": ("accounts_workspace", "delivery_delivery_workspace_id_fk"),
    "campaign_id": ("campaigns_campaign", "delivery_delivery_campaign_id_fk"),
}


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "delivery_delivery")
    for name, info in constraints.items():
        if info["foreign_key"] and info["columns"] in ([column] for column in COLUMNS):
            schema_editor.execute(
                f"ALTER TABLE delivery_delivery DROP CONSTRAINT {schema_editor.quote_name(name)}"
            )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column, (table, name) in COLUMNS.items():
        schema_editor.execute(
            f"ALTER TABLE delivery_delivery ADD CONSTRAINT {name} FOREIGN KEY ({column})"
            f" REFERENCES {table} (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0007_ledger_fewer_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="workspace",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.workspace",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="campaign",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="campaigns.campaign",
                    ),
                ),
            ],
        ),
    ]
