from django.apps import AppConfig


class SignupConfig(AppConfig):
    name = "mailmarketer.signup"
    label = "signup"
    verbose_name = "Sign-up and unsubscribe"

    def ready(self):
        from mailmarketer.audience import personal_data

        from .models import Confirmation, Submission

        def export_submissions(subscriber):
            return personal_data.rows_as_dicts(
                Submission.objects.filter(subscriber=subscriber).order_by("created_at", "pk"),
                [
                    "form__name",
                    "created_at",
                    "outcome",
                    "name",
                    "page_url",
                    "referrer",
                    "ip",
                    "user_agent",
                ],
            )

        def erase_submissions(subscriber):
            # The rows stay for the form's counts, with nothing that could name the person.
            Submission.objects.filter(subscriber=subscriber).update(
                subscriber=None, ip=None, user_agent="", page_url="", referrer="", name=""
            )

        def export_confirmations(subscriber):
            return personal_data.rows_as_dicts(
                Confirmation.objects.filter(subscriber=subscriber).order_by("created_at", "pk"),
                ["created_at", "status", "confirmed_at", "expires_at"],
            )

        personal_data.register(
            Submission,
            section="form_submissions",
            export=export_submissions,
            erase=erase_submissions,
        )
        personal_data.register(Confirmation, section="confirmations", export=export_confirmations)

        from mailmarketer.lib.worker import register_duty

        from . import leads, resources, segment_kinds, spooled
        from .models_webinars import Registration
        from .webinars import send_reminder_one

        def export_registrations(subscriber):
            return personal_data.rows_as_dicts(
                Registration.objects.filter(subscriber=subscriber).order_by("registered_at", "pk"),
                ["event__title", "event__starts_at", "status", "name", "registered_at", "attended"],
            )

        # Erasure deletes the subscriber, and their registrations (and reminders) with them.
        personal_data.register(
            Registration, section="webinar_registrations", export=export_registrations
        )
        register_duty(send_reminder_one)
        register_duty(spooled.ingest_signup_one)
        self._forget_forms_on_change()
        resources.register_personal_data()
        leads.register_personal_data()
        segment_kinds.register()

    def _forget_forms_on_change(self):
        """A change made in this process to what a form's cached objects are built from
        empties this process's cache at once (others check theirs within FRESH_SECONDS)."""
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from mailmarketer.accounts.models import Workspace
        from mailmarketer.audience.models import MailingList

        from .models import Form
        from .models_altcha import FormProtection
        from .queries_submit import forget_forms

        for model in (Form, Workspace, MailingList, FormProtection):
            post_save.connect(forget_forms, sender=model, dispatch_uid=f"forms-{model.__name__}")
            post_delete.connect(forget_forms, sender=model, dispatch_uid=f"forms-d{model.__name__}")
        m2m_changed.connect(forget_forms, sender=Form.lists.through, dispatch_uid="forms-lists")
