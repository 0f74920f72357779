"""The built-in words of webinar pages and mails, per language (as texts.py for forms).

The engine renders text bodies with trim_blocks (campaigns/rendering.py): the newline right
after a block tag is dropped, hence the doubled newlines after `{% if %}` and `{% endif %}`.

Mail bodies are Jinja templates for the delivery engine: what varies (the title, the time, the
links) goes in as `data` values, never into the template's source, since a title may hold
braces."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "when": "When",
        "duration": "{minutes} minutes",
        "register": "Register",
        "webinar_full": "This webinar is full: no seats are left, and the waiting list is "
        "full too.",
        "webinar_closed": "Registration for this webinar is closed.",
        "webinar_cancelled": "This webinar has been cancelled.",
        "thanks": "Thank you for registering. We have sent you an email with the details.",
        "cancel_title": "Cancel your registration",
        "cancel_intro": "Press the button to cancel the registration of {address} for "
        "“{title}” on {when}.",
        "cancel_button": "Cancel my registration",
        "cancel_done": "Your registration is cancelled.",
        "cancel_invalid": "This link is not valid or has expired.",
        "cancel_over": "This webinar has already taken place or been cancelled.",
        "registered_subject": "You are registered: {{ data.title }}",
        "registered_body": "You are registered for “{{ data.title }}”.\n\n"
        "When: {{ data.when }}\n{% if data.join_url %}Join here: {{ data.join_url }}\n{% endif %}"
        "\n\nThe attached invitation adds it to your calendar.\n\n"
        "Cannot come? Cancel your registration and free your seat for someone else:\n"
        "{{ data.cancel_url }}\n",
        "waitlisted_subject": "You are on the waiting list: {{ data.title }}",
        "waitlisted_body": "“{{ data.title }}” on {{ data.when }} is full, and you are on its "
        "waiting list. If a seat frees up, you get it, and we send you the invitation.\n\n"
        "To leave the waiting list:\n{{ data.cancel_url }}\n",
        "reminder_subject": "Reminder: {{ data.title }} starts on {{ data.when }}",
        "reminder_body": "“{{ data.title }}” starts on {{ data.when }}.\n\n"
        "{% if data.join_url %}Join here: {{ data.join_url }}\n\n{% endif %}"
        "Cannot come? Cancel your registration:\n{{ data.cancel_url }}\n",
        "moved_subject": "Changed: {{ data.title }}",
        "moved_body": "“{{ data.title }}” has changed.\n\nWhen: {{ data.when }}\n"
        "{% if data.join_url %}Join here: {{ data.join_url }}\n{% endif %}"
        "{% if data.invitation %}\n\nThe attached invitation updates your calendar.\n"
        "{% endif %}\n\nCannot come? Cancel your registration:\n{{ data.cancel_url }}\n",
        "cancelled_subject": "Cancelled: {{ data.title }}",
        "cancelled_body": "“{{ data.title }}” on {{ data.when }} has been cancelled. "
        "We are sorry.{% if data.invitation %} The attached notice removes it from your "
        "calendar.{% endif %}\n",
        "left_subject": "Registration cancelled: {{ data.title }}",
        "left_body": "Your registration for “{{ data.title }}” on {{ data.when }} is cancelled."
        "{% if data.invitation %} The attached notice removes it from your calendar."
        "{% endif %}\n",
    },
    "de": {
        "when": "Wann",
        "duration": "{minutes} Minuten",
        "register": "Registrieren",
        "webinar_full": "Dieses Webinar ist ausgebucht: es sind keine Plätze mehr frei, auch "
        "nicht auf der Warteliste.",
        "webinar_closed": "Die Anmeldung zu diesem Webinar ist geschlossen.",
        "webinar_cancelled": "Dieses Webinar wurde abgesagt.",
        "thanks": "Vielen Dank für Ihre Anmeldung. Wir haben Ihnen eine E-Mail mit den "
        "Einzelheiten geschickt.",
        "cancel_title": "Anmeldung stornieren",
        "cancel_intro": "Drücken Sie die Schaltfläche, um die Anmeldung von {address} zu "
        "„{title}“ am {when} zu stornieren.",
        "cancel_button": "Meine Anmeldung stornieren",
        "cancel_done": "Ihre Anmeldung ist storniert.",
        "cancel_invalid": "Dieser Link ist ungültig oder abgelaufen.",
        "cancel_over": "Dieses Webinar hat bereits stattgefunden oder wurde abgesagt.",
        "registered_subject": "Sie sind angemeldet: {{ data.title }}",
        "registered_body": "Sie sind für „{{ data.title }}“ angemeldet.\n\n"
        "Wann: {{ data.when }}\n{% if data.join_url %}Teilnehmen: {{ data.join_url }}\n"
        "{% endif %}\n\nDie angehängte Einladung trägt den Termin in Ihren Kalender ein.\n\n"
        "Sie können nicht teilnehmen? Stornieren Sie Ihre Anmeldung und geben Sie Ihren Platz "
        "frei:\n{{ data.cancel_url }}\n",
        "waitlisted_subject": "Sie stehen auf der Warteliste: {{ data.title }}",
        "waitlisted_body": "„{{ data.title }}“ am {{ data.when }} ist ausgebucht, und Sie "
        "stehen auf der Warteliste. Wird ein Platz frei, erhalten Sie ihn und die Einladung."
        "\n\nUm die Warteliste zu verlassen:\n{{ data.cancel_url }}\n",
        "reminder_subject": "Erinnerung: {{ data.title }} beginnt am {{ data.when }}",
        "reminder_body": "„{{ data.title }}“ beginnt am {{ data.when }}.\n\n"
        "{% if data.join_url %}Teilnehmen: {{ data.join_url }}\n\n{% endif %}"
        "Sie können nicht teilnehmen? Stornieren Sie Ihre Anmeldung:\n{{ data.cancel_url }}\n",
        "moved_subject": "Geändert: {{ data.title }}",
        "moved_body": "„{{ data.title }}“ wurde geändert.\n\nWann: {{ data.when }}\n"
        "{% if data.join_url %}Teilnehmen: {{ data.join_url }}\n{% endif %}"
        "{% if data.invitation %}\n\nDie angehängte Einladung aktualisiert Ihren Kalender.\n"
        "{% endif %}\n\nSie können nicht teilnehmen? Stornieren Sie Ihre Anmeldung:\n"
        "{{ data.cancel_url }}\n",
        "cancelled_subject": "Abgesagt: {{ data.title }}",
        "cancelled_body": "„{{ data.title }}“ am {{ data.when }} wurde abgesagt. Es tut uns "
        "leid.{% if data.invitation %} Die angehängte Nachricht entfernt den Termin aus Ihrem "
        "Kalender.{% endif %}\n",
        "left_subject": "Anmeldung storniert: {{ data.title }}",
        "left_body": "Ihre Anmeldung zu „{{ data.title }}“ am {{ data.when }} ist storniert."
        "{% if data.invitation %} Die angehängte Nachricht entfernt den Termin aus Ihrem "
        "Kalender.{% endif %}\n",
    },
}


def wtext(language: str, key: str, **values) -> str:
    words = TEXTS.get(language, TEXTS["en"])[key]
    return words.format(**values) if values else words
