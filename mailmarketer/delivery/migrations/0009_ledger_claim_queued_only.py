"""The claim index holds queued rows only; the outcomes other than sent get a small index of
their own (models.py says why)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0008_ledger_plan_without_fk_checks"),
    ]

    operations = [
        # The new ones first: a worker still running the old code meanwhile claims through it.
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status", "queued")),
                fields=["campaign", "next_attempt_at", "id"],
                name="delivery_claim_queued",
            ),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(
                    ("status__in", ["failed", "bounced", "skipped", "cancelled", "dead"])
                ),
                fields=["campaign", "status", "id"],
                name="delivery_outcomes",
            ),
        ),
        migrations.RemoveIndex(
            model_name="delivery",
            name="delivery_claim_v2",
        ),
    ]
