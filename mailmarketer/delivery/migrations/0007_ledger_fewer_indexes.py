"""Drop the ledger's single-column indexes on workspace, campaign and server (models.py says why).

By hand rather than AlterField: on SQLite, AlterField remakes the whole table (copy, drop,
rename), which would also drop the ledger-count triggers of 0006 and copy every row; dropping the
three indexes is all that is needed, on both databases (Django gives them the same names there).
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "delivery_delivery_workspace_id_d9efb5b8": "workspace_id",
    "delivery_delivery_campaign_id_cf75935d": "campaign_id",
    "delivery_delivery_server_id_51af20d0": "server_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0006_ledger_counts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "delivery_delivery" ("{column}")',
                )
                for name, column in INDEXES.items()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="workspace",
                    field=models.ForeignKey(
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
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="campaigns.campaign",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="server",
                    field=models.ForeignKey(
                        blank=True,
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
