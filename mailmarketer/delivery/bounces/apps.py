"""What bounce processing registers when Django starts (called by delivery's AppConfig)."""

from __future__ import annotations


def ready() -> None:
    from mailmarketer.audience import personal_data
    from mailmarketer.lib.worker import register_duty

    from . import apply, mailbox, webhooks
    from .models import Bounce

    def export(subscriber):
        return personal_data.rows_as_dicts(
            Bounce.objects.filter(subscriber=subscriber).order_by("received_at"),
            ["received_at", "kind", "outcome", "channel", "status_code", "address", "diagnostic"],
        )

    def erase(subscriber):
        # The reports name the person (the address, the returned message): they go; the
        # suppression (a hash) stays.
        Bounce.objects.filter(subscriber=subscriber).delete()

    personal_data.register(Bounce, section="bounces", export=export, erase=erase)
    register_duty(apply.apply_pending_one)
    register_duty(apply.purge_raw_one)
    register_duty(webhooks.purge_receipts_one)
    register_duty(mailbox.poll_one)
