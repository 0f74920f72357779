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
        self._register_facts(personal_data)
        register_duty(purge_abandoned_one)
        register_duty(expire_import_files_one)
        register_duty(expire_reconsent_one)

    @staticmethod
    def _register_facts(personal_data):
        from .models import Fact, FactDay

        def export_facts(subscriber):
            return personal_data.rows_as_dicts(
                Fact.objects.filter(subscriber=subscriber).order_by("first_at", "pk"),
                ["kind", "object_key", "first_at", "last_at", "count"],
            )

        def export_fact_days(subscriber):
            return personal_data.rows_as_dicts(
                FactDay.objects.filter(subscriber=subscriber).order_by("day", "pk"),
                ["kind", "object_key", "day", "count"],
            )

        # Both go with the subscriber row (on_delete=CASCADE): a fact is only about a person.
        personal_data.register(Fact, section="activity_facts", export=export_facts)
        personal_data.register(FactDay, section="activity_days", export=export_fact_days)
