"""The built-in words of the public pages, per form language. A small table rather than
gettext catalogues: the words are few, and they follow the form's language, not the visitor's
browser (the business chose the language of its page)."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "email": "Email address",
        "name": "Name",
        "first_name": "First name",
        "last_name": "Last name",
        "company": "Company",
        "job_title": "Job title",
        "phone": "Phone",
        "country": "Country",
        "lists": "Lists",
        "consent": "I agree",
        "tracking": "I agree to activity tracking",
        "submit": "Sign up",
        "optional": "optional",
        "honeypot": "Leave this field empty",
        "thanks": "Thank you. If this address needs confirming, we have sent a link to it: "
        "please check your inbox.",
        "required": "This field is required.",
        "too_long": "This is too long (at most {limit} characters).",
        "invalid_email": "Enter a valid email address.",
        "invalid_number": "Enter a number.",
        "invalid_date": "Enter a date as YYYY-MM-DD.",
        "invalid_choice": "Choose one of the options offered.",
        "invalid_characters": "This contains characters that cannot be stored (control "
        "characters).",
        "consent_required": "Please tick the box to agree.",
        "lists_required": "Choose at least one list.",
        "unknown_field": "This form has no field named “{name}”.",
        "expired": "This form has expired: please send it again.",
        "blocked": "We could not accept this sign-up. Please try again later.",
        "too_many": "Too many sign-ups from here or for this address: please try again later.",
        "too_big": "The form sent too much data.",
        "problem": "Please correct the marked fields.",
        "altcha_missing": "One more step: press “Sign up” once more. Your browser then does "
        "a moment of work that shows it is not a robot (this needs JavaScript).",
        "altcha_invalid": "The check that you are not a robot did not work: please send the "
        "form again.",
        "altcha_expired": "The check that you are not a robot has expired: please send the "
        "form again.",
        "altcha_used": "This check that you are not a robot was already used: please send the "
        "form again.",
        "noscript": "This form needs JavaScript: your browser does a moment of work to show it "
        "is not a robot. Nothing is sent anywhere else.",
        "confirm_title": "Confirm your subscription",
        "confirm_intro": "Press the button to confirm the subscription of {address}.",
        "confirm_button": "Confirm",
        "confirmed": "Thank you: your subscription is confirmed.",
        "confirm_invalid": "This confirmation link is not valid or has expired. Sign up again "
        "to receive a new one.",
        "mail_subject": "Please confirm your subscription",
        "mail_body": "Someone, hopefully you, asked to subscribe {address} to {sender}.\n\n"
        "To confirm, open this link and press Confirm (within 7 days):\n\n{url}\n\n"
        "If it was not you, ignore this message: nothing will be sent without your "
        "confirmation.",
    },
    "de": {
        "email": "E-Mail-Adresse",
        "name": "Name",
        "first_name": "Vorname",
        "last_name": "Nachname",
        "company": "Firma",
        "job_title": "Position",
        "phone": "Telefon",
        "country": "Land",
        "lists": "Listen",
        "consent": "Ich stimme zu",
        "tracking": "Ich stimme der Aktivitätsverfolgung zu",
        "submit": "Anmelden",
        "optional": "optional",
        "honeypot": "Dieses Feld bitte leer lassen",
        "thanks": "Vielen Dank. Falls diese Adresse bestätigt werden muss, haben wir einen Link "
        "an sie geschickt: bitte sehen Sie in Ihrem Posteingang nach.",
        "required": "Dieses Feld ist erforderlich.",
        "too_long": "Das ist zu lang (höchstens {limit} Zeichen).",
        "invalid_email": "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
        "invalid_number": "Bitte geben Sie eine Zahl ein.",
        "invalid_date": "Bitte geben Sie ein Datum als JJJJ-MM-TT ein.",
        "invalid_choice": "Bitte wählen Sie eine der angebotenen Möglichkeiten.",
        "invalid_characters": "Das enthält Zeichen, die nicht gespeichert werden können "
        "(Steuerzeichen).",
        "consent_required": "Bitte setzen Sie das Häkchen, um zuzustimmen.",
        "lists_required": "Bitte wählen Sie mindestens eine Liste.",
        "unknown_field": "Dieses Formular hat kein Feld „{name}“.",
        "expired": "Dieses Formular ist abgelaufen: bitte senden Sie es erneut.",
        "blocked": "Wir konnten diese Anmeldung nicht annehmen. Bitte versuchen Sie es später.",
        "too_many": "Zu viele Anmeldungen von hier oder für diese Adresse: bitte versuchen Sie "
        "es später erneut.",
        "too_big": "Das Formular hat zu viele Daten gesendet.",
        "problem": "Bitte korrigieren Sie die markierten Felder.",
        "altcha_missing": "Noch ein Schritt: bitte drücken Sie noch einmal „Anmelden“. Ihr "
        "Browser rechnet dann kurz, um zu zeigen, dass er kein Roboter ist (dafür ist "
        "JavaScript nötig).",
        "altcha_invalid": "Die Prüfung, dass Sie kein Roboter sind, hat nicht geklappt: bitte "
        "senden Sie das Formular erneut.",
        "altcha_expired": "Die Prüfung, dass Sie kein Roboter sind, ist abgelaufen: bitte senden "
        "Sie das Formular erneut.",
        "altcha_used": "Diese Prüfung, dass Sie kein Roboter sind, wurde schon verwendet: bitte "
        "senden Sie das Formular erneut.",
        "noscript": "Dieses Formular braucht JavaScript: Ihr Browser rechnet kurz, um zu zeigen, "
        "dass er kein Roboter ist. Dabei wird nichts anderswohin gesendet.",
        "confirm_title": "Anmeldung bestätigen",
        "confirm_intro": "Drücken Sie die Schaltfläche, um die Anmeldung von {address} zu "
        "bestätigen.",
        "confirm_button": "Bestätigen",
        "confirmed": "Vielen Dank: Ihre Anmeldung ist bestätigt.",
        "confirm_invalid": "Dieser Bestätigungslink ist ungültig oder abgelaufen. Melden Sie sich "
        "erneut an, um einen neuen zu erhalten.",
        "mail_subject": "Bitte bestätigen Sie Ihre Anmeldung",
        "mail_body": "Jemand, hoffentlich Sie, möchte {address} bei {sender} anmelden.\n\n"
        "Zum Bestätigen öffnen Sie diesen Link und drücken Sie „Bestätigen“ (innerhalb von "
        "7 Tagen):\n\n{url}\n\nWaren Sie es nicht, ignorieren Sie diese Nachricht: ohne Ihre "
        "Bestätigung wird nichts gesendet.",
    },
}


def text(language: str, key: str, **values) -> str:
    words = TEXTS.get(language, TEXTS["en"])[key]
    return words.format(**values) if values else words
