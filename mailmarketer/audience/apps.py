from django.apps import AppConfig


class AudienceConfig(AppConfig):
    name = "mailmarketer.audience"
    label = "audience"
    verbose_name = "Audience"

    def ready(self):
        from . import personal_data

        personal_data.register_core()
