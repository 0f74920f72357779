from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "mailmarketer.delivery"
    label = "delivery"
    verbose_name = "Delivery"

    def ready(self):
        from mailmarketer.audience import personal_data

        from .models import Delivery

        def export(subscriber):
            return personal_data.rows_as_dicts(
                Delivery.objects.filter(subscriber=subscriber).order_by("created_at"),
                [
                    "campaign__name",
                    "campaign__kind",
                    "campaign__data",
                    "status",
                    "sent_at",
                    "message_id",
                    "smtp_reply",
                ],
            )

        def erase(subscriber):
            from mailmarketer.campaigns.models import Attachment, Campaign

            # A transactional message's data is about its one recipient (an order, a booking).
            Campaign.objects.filter(
                kind=Campaign.Kind.TRANSACTIONAL, deliveries__subscriber=subscriber
            ).update(data={})
            # Its attachments were made for that one person too (a webinar's invitation names
            # them as its attendee).
            Attachment.objects.filter(
                campaign__kind=Campaign.Kind.TRANSACTIONAL,
                campaign__deliveries__subscriber=subscriber,
            ).delete()
            # The row stays for the campaign's totals, without anything naming the person: a
            # relay's reply may quote the address ("550 <ann@example.com>: no such user").
            Delivery.objects.filter(subscriber=subscriber).update(subscriber=None, smtp_reply="")

        personal_data.register(Delivery, section="deliveries", export=export, erase=erase)

        from .bounces.apps import ready as bounces_ready

        bounces_ready()

        from mailmarketer.lib.worker import register_duty

        from . import engine, planner, scheduler

        # Start what is due and plan first so a new campaign starts at once, then send, then
        # the cheap housekeeping.
        register_duty(scheduler.start_scheduled_one)
        register_duty(planner.plan_one)
        register_duty(engine.send_some)
        register_duty(engine.reclaim_one)
        register_duty(engine.finish_one)
        from . import counters

        register_duty(counters.compact_counts_one)
