"""Leaner writes for the tables an import fills (models.TENANT_KEY): the workspace of a
subscriber, a subscription and a consent record is no longer a database constraint (Django
cascades a workspace's deletion), and seven single-column indexes that a composite index already
leads are dropped."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_audit_append_only"),
        ("audience", "0004_subscriber_search_trigram"),
    ]

    operations = [
        migrations.AlterField(
            model_name="consentrecord",
            name="notice",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="audience.consentnotice",
            ),
        ),
        migrations.AlterField(
            model_name="consentrecord",
            name="subscriber",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="consent_records",
                to="audience.subscriber",
            ),
        ),
        migrations.AlterField(
            model_name="consentrecord",
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
            model_name="subscriber",
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
            model_name="subscription",
            name="mailing_list",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="subscriptions",
                to="audience.mailinglist",
            ),
        ),
        migrations.AlterField(
            model_name="subscription",
            name="subscriber",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="subscriptions",
                to="audience.subscriber",
            ),
        ),
        migrations.AlterField(
            model_name="subscription",
            name="workspace",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.workspace",
            ),
        ),
    ]
