from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "mailmarketer.tracking"
    label = "tracking"
    verbose_name = "Activity tracking"

    def ready(self):
        from mailmarketer.audience import personal_data

        from .models import EmailEvent

        def export_email_events(subscriber):
            return personal_data.rows_as_dicts(
                EmailEvent.objects.filter(subscriber=subscriber).order_by("at", "pk"),
                ["kind", "campaign_id", "link_id", "at", "agent_class", "user_agent", "ip"],
            )

        # Identified opens and clicks go with the person (on_delete=CASCADE); anonymous ones
        # never named them.
        personal_data.register(EmailEvent, section="email_events", export=export_email_events)

        from mailmarketer.lib.worker import register_duty

        from . import mail_ingest, mail_retention, rollups

        register_duty(mail_ingest.ingest_mail_one)
        register_duty(rollups.roll_up_one)
        register_duty(mail_retention.delete_old_email_events_one)
        self._ready_web(personal_data)

    def _ready_web(self, personal_data):
        """Website activity (trackweb): the person's hits in their export (they go with the
        subscriber row on erasure), and the worker's website duties."""
        from mailmarketer.lib.worker import register_duty

        from . import duties_web, rollup, spool, web_ingest
        from .models_web import WebHit

        def export_web_hits(subscriber):
            return personal_data.rows_as_dicts(
                WebHit.objects.filter(subscriber=subscriber).order_by("at", "pk"),
                ["at", "kind", "path", "title", "referrer", "target", "name", "browser", "os",
                 "device", "ip"],
            )  # fmt: skip

        personal_data.register(WebHit, section="web_hits", export=export_web_hits)
        for duty in (
            web_ingest.ingest_web_one,
            spool.replay_spool_one,
            duties_web.make_partitions_one,
            rollup.rollup_one,
            duties_web.truncate_ips_one,
            duties_web.destroy_old_salts_one,
            duties_web.delete_old_hits_one,
        ):
            register_duty(duty)
