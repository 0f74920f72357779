from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "mailmarketer.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"
