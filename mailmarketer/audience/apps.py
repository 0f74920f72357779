from django.apps import AppConfig


class AudienceConfig(AppConfig):
    name = "mailmarketer.audience"
    label = "audience"
    verbose_name = "Audience"

    def ready(self):
        from mailmarketer.lib.worker import register_duty

        from . import personal_data
        from .actions import expire_reconsent_one
        from .importing.jobs import expire_import_files_one, purge_abandoned_one

        personal_data.register_core()
        register_duty(purge_abandoned_one)
        register_duty(expire_import_files_one)
        register_duty(expire_reconsent_one)
