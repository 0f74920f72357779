from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "mailmarketer.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from mailmarketer.lib.worker import register_duty

        from .duties import start_scheduled_one

        register_duty(start_scheduled_one)
