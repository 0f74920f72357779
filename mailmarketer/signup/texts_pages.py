"""The built-in words of the pages a person reaches from their mail (the preference centre, the
erase and data links, the unsubscribe pages, download links), per language, as texts.py for
the forms. The language is the one of the last form the person used (`language_of`), else
English: the business chose it for its page, and the pages after it follow.

Words with `{name}` placeholders are filled by `{% say %}` (signup_texts template tags) with
the values escaped, so the words themselves may hold the little markup they need."""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import mark_safe

PAGES: dict[str, dict[str, str]] = {
    "en": {
        # The preference centre (/f/m/<token>).
        "manage_title": "Your subscription",
        "manage_for": "For <strong>{address}</strong>.",
        "lists": "Lists",
        "no_lists": "{sender} has no lists to choose from here.",
        "also_on": "You are also on: {others}.",
        "tracking": "Activity tracking",
        "name": "Name",
        "save": "Save my choices",
        "stop_title": "Stop all mail",
        "stop_suppressed": "This address is on the do-not-mail list of {sender}: no marketing mail "
        "is sent to it. Ticking a list above and saving takes it off again, if you "
        "unsubscribed it yourself.",
        "stop_intro": "Unsubscribe from every list and put this address on the do-not-mail "
        "list of {sender}.",
        "everything_button": "Unsubscribe from everything",
        "data_title": "Your data",
        "data_intro": "We mail a link to this address; it works for {hours} hours.",
        "data_button": "Mail me my data",
        "erase_button": "Erase my data",
        "manage_note": "This link was in a message sent to the address above. Opening it "
        "changes nothing until you press a button. Erasing needs a second step: a link we "
        "mail to the address.",
        "notice": "I want to receive the lists ticked above from {sender}. I can change this "
        "at any time on this page, or from the unsubscribe link in every message.",
        "bad_action": "The form sent a choice this page does not offer.",
        "everything_done": "You are unsubscribed from every list, and no more marketing mail "
        "will be sent to this address.",
        "data_sent": "We have sent a link to your data to your address. It works for "
        "{hours} hours.",
        "erase_sent": "We have sent a link to your address: open it and press Erase to erase "
        "your data. Nothing is erased until then.",
        "too_many_mails": "Too many mails for this address today: please try again tomorrow.",
        "cannot_mail": "We cannot send mail to this address (it bounced or was blocked): ask "
        "the sender to help.",
        "lists_invalid": "Choose among the lists shown.",
        "name_invalid": "At most {limit} characters, and no control characters.",
        "problem": "Please correct the marked fields.",
        "not_liftable": "This address is on the sender's do-not-mail list for a reason only "
        "the sender can lift (a bounce, a complaint, or their decision): no list was joined.",
        "saved": "Your choices are saved.",
        # The mailed links: erase and data.
        "erase_title": "Erase your data",
        "erase_intro": "Press the button to erase everything {sender} keeps about "
        "<strong>{address}</strong>: your subscriptions, your consent records, your name and "
        "details, the messages sent to you. Only a one-way hash of the address stays, so that "
        "it is never added or mailed again without you signing up and confirming.",
        "erase_final": "This cannot be undone.",
        "erase_confirm": "Erase",
        "erased_title": "Your data is erased",
        "erased_text": "{sender} keeps nothing about you any more but a one-way hash of the "
        "address, so that it is never mailed again unless you sign up and confirm.",
        "link_invalid_title": "Link not valid",
        "link_invalid_heading": "This link is not valid",
        "link_invalid_text": "The link is incomplete, has expired, or the data it pointed at no "
        'longer exists. Use the "Manage your subscription" link in a recent message to '
        "start again.",
        "data_subject": "Your data",
        "data_body": "You asked for a copy of the data {{ data.sender }} keeps about "
        "{{ subscriber.email }}.\n\nDownload it from this link (it works for {hours} hours):"
        "\n\n{{ data.url }}\n\nIf it was not you, ignore this message: the data goes only to "
        "this address.",
        "erase_subject": "Confirm the erasure of your data",
        "erase_body": "You asked {{ data.sender }} to erase everything it keeps about "
        "{{ subscriber.email }}.\n\nTo confirm, open this link and press Erase (within {hours} "
        "hours):\n\n{{ data.url }}\n\nIf it was not you, ignore this message: nothing is "
        "erased without your confirmation.",
        # The unsubscribe link (/f/u/<token>) and its "by mistake" undo.
        "unsub_title": "Unsubscribe",
        "unsub_gone": "This address is not on any of our lists any more: there is nothing to "
        "unsubscribe from, and no more mail will be sent to it.",
        "unsub_from": "<strong>{address}</strong> will be unsubscribed from:",
        "unsub_button": "Unsubscribe",
        "unsub_already": "<strong>{address}</strong> is already unsubscribed from {lists}.",
        "unsub_none": "<strong>{address}</strong> is not subscribed to any list of {sender}.",
        "unsub_suppressed": "This address is on the do-not-mail list of {sender} already: no "
        "message from {sender} will be sent to it.",
        "unsub_stop_title": "Or stop all mail from {sender}",
        "unsub_stop_text": "This unsubscribes <strong>{address}</strong> from every list "
        "of {sender} and puts the address on their do-not-mail list, so that no form, "
        "import or list can add it again. To receive mail from {sender} again later, you "
        "would have to ask them to take it off that list.",
        "unsub_note": "This link was in a message sent to the address above. Opening it "
        "changes nothing until you press a button.",
        "unsub_bad_scope": "The form sent a choice this page does not offer: use a button below.",
        "unsub_invalid_heading": "This unsubscribe link is not valid",
        "unsub_invalid_text": "The link may have been cut short or changed on its way here. "
        "Open the message again and use the unsubscribe link in it as it is, or reply to the "
        "message and ask to be taken off the list.",
        "unsubscribed_title": "You're unsubscribed",
        "unsubscribed_gone": "No more mail will be sent to this address from these lists.",
        "unsubscribed_everything": "<strong>{address}</strong> is unsubscribed from every list "
        "of {sender} and is on their do-not-mail list: no more messages from {sender} "
        "will be sent to it.",
        "unsubscribed_from": "<strong>{address}</strong> will get no more mail from:",
        "unsubscribed_already": "<strong>{address}</strong> was already unsubscribed.",
        "unsubscribed_already_from": "<strong>{address}</strong> was already unsubscribed "
        "from {lists}.",
        "undo_button": "I did this by mistake: subscribe me again",
        "unsubscribed_stop_title": "Stop all mail from {sender}?",
        "unsubscribed_stop_text": "This unsubscribes the address from the other lists of {sender} "
        "too and puts it on their do-not-mail list, so that no form, import or list "
        "can add it again.",
        "unsubscribed_note": "It may take a few minutes for a message already on its way to stop.",
        "resubscribed_title": "You're subscribed again",
        "resubscribed_text": "<strong>{address}</strong> gets mail from {sender} again:",
        "resubscribed_note": "The unsubscribe link in every message still works.",
        "nothing_changed": "Nothing changed",
        "undo_out_of_date": "This button is out of date: open the unsubscribe link again.",
        "undo_suppressed": "This address is on the do-not-mail list: to get mail again, sign "
        "up through one of the sender's forms and confirm.",
        "undo_nothing": "There is nothing to undo here: the unsubscribe is older than {days} "
        "days, or was not made through this link.",
        "undo_stopped": "The sender has stopped mail to this address.",
        # Download links of resources.
        "download_invalid": "This download link is not valid. Ask for the download again on "
        "the form you used.",
        "download_expired": "This download link has expired. Ask for the download again on "
        "the form you used.",
        "download_gone": "This download is no longer available.",
    },
    "de": {
        "manage_title": "Ihr Abonnement",
        "manage_for": "Für <strong>{address}</strong>.",
        "lists": "Listen",
        "no_lists": "{sender} bietet hier keine Listen zur Auswahl an.",
        "also_on": "Sie stehen außerdem auf: {others}.",
        "tracking": "Aktivitätsverfolgung",
        "name": "Name",
        "save": "Meine Auswahl speichern",
        "stop_title": "Keine E-Mails mehr",
        "stop_suppressed": "Diese Adresse steht auf der Sperrliste von {sender}: es werden "
        "keine Werbe-E-Mails an sie gesendet. Haben Sie sich selbst abgemeldet, nimmt ein "
        "Häkchen bei einer Liste oben und Speichern sie wieder herunter.",
        "stop_intro": "Von jeder Liste abmelden und diese Adresse auf die Sperrliste von "
        "{sender} setzen.",
        "everything_button": "Von allem abmelden",
        "data_title": "Ihre Daten",
        "data_intro": "Wir senden einen Link an diese Adresse; er gilt {hours} Stunden.",
        "data_button": "Meine Daten per E-Mail anfordern",
        "erase_button": "Meine Daten löschen",
        "manage_note": "Dieser Link stand in einer Nachricht an die Adresse oben. Das Öffnen "
        "ändert nichts, bis Sie eine Schaltfläche drücken. Das Löschen braucht einen zweiten "
        "Schritt: einen Link, den wir an die Adresse senden.",
        "notice": "Ich möchte die oben angekreuzten Listen von {sender} erhalten. Ich kann das "
        "jederzeit auf dieser Seite ändern oder über den Abmeldelink in jeder Nachricht.",
        "bad_action": "Das Formular hat eine Auswahl gesendet, die diese Seite nicht anbietet.",
        "everything_done": "Sie sind von jeder Liste abgemeldet, und an diese Adresse werden "
        "keine Werbe-E-Mails mehr gesendet.",
        "data_sent": "Wir haben einen Link zu Ihren Daten an Ihre Adresse gesendet. Er gilt "
        "{hours} Stunden.",
        "erase_sent": "Wir haben einen Link an Ihre Adresse gesendet: öffnen Sie ihn und "
        "drücken Sie „Löschen“, um Ihre Daten zu löschen. Bis dahin wird nichts gelöscht.",
        "too_many_mails": "Zu viele E-Mails an diese Adresse heute: bitte versuchen Sie es "
        "morgen erneut.",
        "cannot_mail": "Wir können an diese Adresse keine E-Mails senden (sie kam zurück oder "
        "wurde gesperrt): bitte wenden Sie sich an den Absender.",
        "lists_invalid": "Bitte wählen Sie unter den gezeigten Listen.",
        "name_invalid": "Höchstens {limit} Zeichen und keine Steuerzeichen.",
        "problem": "Bitte korrigieren Sie die markierten Felder.",
        "not_liftable": "Diese Adresse steht aus einem Grund auf der Sperrliste des Absenders, "
        "den nur er aufheben kann (eine Rückläufer-Meldung, eine Beschwerde oder seine "
        "Entscheidung): keiner Liste wurde beigetreten.",
        "saved": "Ihre Auswahl ist gespeichert.",
        "erase_title": "Ihre Daten löschen",
        "erase_intro": "Drücken Sie die Schaltfläche, um alles zu löschen, was {sender} über "
        "<strong>{address}</strong> gespeichert hat: Ihre Abonnements, Ihre Einwilligungen, "
        "Ihren Namen und Ihre Angaben, die Ihnen gesendeten Nachrichten. Nur ein "
        "Einweg-Hashwert der Adresse bleibt, damit sie nie wieder hinzugefügt oder "
        "angeschrieben wird, ohne dass Sie sich anmelden und bestätigen.",
        "erase_final": "Das lässt sich nicht rückgängig machen.",
        "erase_confirm": "Löschen",
        "erased_title": "Ihre Daten sind gelöscht",
        "erased_text": "{sender} speichert über Sie nichts mehr außer einem Einweg-Hashwert der "
        "Adresse, damit sie nie wieder angeschrieben wird, es sei denn, Sie melden sich an "
        "und bestätigen.",
        "link_invalid_title": "Link ungültig",
        "link_invalid_heading": "Dieser Link ist ungültig",
        "link_invalid_text": "Der Link ist unvollständig, abgelaufen, oder die Daten, auf die "
        "er zeigte, gibt es nicht mehr. Nutzen Sie den Link „Abonnement verwalten“ in einer "
        "neueren Nachricht, um neu zu beginnen.",
        "data_subject": "Ihre Daten",
        "data_body": "Sie haben eine Kopie der Daten angefordert, die {{ data.sender }} über "
        "{{ subscriber.email }} gespeichert hat.\n\nLaden Sie sie über diesen Link herunter "
        "(er gilt {hours} Stunden):\n\n{{ data.url }}\n\nWaren Sie es nicht, ignorieren Sie "
        "diese Nachricht: die Daten gehen nur an diese Adresse.",
        "erase_subject": "Bestätigen Sie die Löschung Ihrer Daten",
        "erase_body": "Sie haben {{ data.sender }} gebeten, alles zu löschen, was über "
        "{{ subscriber.email }} gespeichert ist.\n\nZum Bestätigen öffnen Sie diesen Link und "
        "drücken Sie „Löschen“ (innerhalb von {hours} Stunden):\n\n{{ data.url }}\n\nWaren Sie "
        "es nicht, ignorieren Sie diese Nachricht: ohne Ihre Bestätigung wird nichts gelöscht.",
        "unsub_title": "Abmelden",
        "unsub_gone": "Diese Adresse steht auf keiner unserer Listen mehr: es gibt nichts "
        "abzumelden, und an sie werden keine E-Mails mehr gesendet.",
        "unsub_from": "<strong>{address}</strong> wird abgemeldet von:",
        "unsub_button": "Abmelden",
        "unsub_already": "<strong>{address}</strong> ist von {lists} bereits abgemeldet.",
        "unsub_none": "<strong>{address}</strong> steht auf keiner Liste von {sender}.",
        "unsub_suppressed": "Diese Adresse steht bereits auf der Sperrliste von {sender}: "
        "keine Nachricht von {sender} wird an sie gesendet.",
        "unsub_stop_title": "Oder alle E-Mails von {sender} beenden",
        "unsub_stop_text": "Damit wird <strong>{address}</strong> von allen Listen von "
        "{sender} abgemeldet und auf deren Sperrliste gesetzt, sodass kein Formular, kein "
        "Import und keine Liste sie wieder hinzufügen kann. Um später wieder E-Mails von "
        "{sender} zu erhalten, müssten Sie darum bitten, sie von dieser Liste zu nehmen.",
        "unsub_note": "Dieser Link stand in einer Nachricht an die Adresse oben. Das Öffnen "
        "ändert nichts, bis Sie eine Schaltfläche drücken.",
        "unsub_bad_scope": "Das Formular hat eine Auswahl gesendet, die diese Seite nicht "
        "anbietet: bitte nutzen Sie eine Schaltfläche unten.",
        "unsub_invalid_heading": "Dieser Abmeldelink ist ungültig",
        "unsub_invalid_text": "Der Link wurde vielleicht unterwegs gekürzt oder verändert. "
        "Öffnen Sie die Nachricht erneut und nutzen Sie den Abmeldelink darin unverändert, "
        "oder antworten Sie auf die Nachricht und bitten Sie, von der Liste genommen zu "
        "werden.",
        "unsubscribed_title": "Sie sind abgemeldet",
        "unsubscribed_gone": "An diese Adresse werden von diesen Listen keine E-Mails mehr "
        "gesendet.",
        "unsubscribed_everything": "<strong>{address}</strong> ist von allen Listen von "
        "{sender} abgemeldet und steht auf deren Sperrliste: keine Nachrichten von {sender} "
        "werden mehr an sie gesendet.",
        "unsubscribed_from": "<strong>{address}</strong> erhält keine E-Mails mehr von:",
        "unsubscribed_already": "<strong>{address}</strong> war bereits abgemeldet.",
        "unsubscribed_already_from": "<strong>{address}</strong> war von {lists} bereits "
        "abgemeldet.",
        "undo_button": "Das war ein Versehen: bitte wieder anmelden",
        "unsubscribed_stop_title": "Alle E-Mails von {sender} beenden?",
        "unsubscribed_stop_text": "Damit wird die Adresse auch von allen anderen Listen von "
        "{sender} abgemeldet und auf deren Sperrliste gesetzt, sodass kein Formular, kein "
        "Import und keine Liste sie wieder hinzufügen kann.",
        "unsubscribed_note": "Eine Nachricht, die schon unterwegs ist, kann noch einige "
        "Minuten lang ankommen.",
        "resubscribed_title": "Sie sind wieder angemeldet",
        "resubscribed_text": "<strong>{address}</strong> erhält wieder E-Mails von {sender}:",
        "resubscribed_note": "Der Abmeldelink in jeder Nachricht funktioniert weiterhin.",
        "nothing_changed": "Nichts geändert",
        "undo_out_of_date": "Diese Schaltfläche ist veraltet: bitte öffnen Sie den Abmeldelink "
        "erneut.",
        "undo_suppressed": "Diese Adresse steht auf der Sperrliste: um wieder E-Mails zu "
        "erhalten, melden Sie sich über ein Formular des Absenders an und bestätigen Sie.",
        "undo_nothing": "Hier gibt es nichts rückgängig zu machen: die Abmeldung ist älter als "
        "{days} Tage oder wurde nicht über diesen Link vorgenommen.",
        "undo_stopped": "Der Absender hat den Versand an diese Adresse eingestellt.",
        "download_invalid": "Dieser Download-Link ist ungültig. Fordern Sie den Download "
        "erneut über das Formular an, das Sie genutzt haben.",
        "download_expired": "Dieser Download-Link ist abgelaufen. Fordern Sie den Download "
        "erneut über das Formular an, das Sie genutzt haben.",
        "download_gone": "Dieser Download ist nicht mehr verfügbar.",
    },
}

LANGUAGES = tuple(PAGES)


def page_text(language: str, key: str, **values) -> str:
    """The plain words (for messages a view passes to its page, and mails)."""
    words = PAGES.get(language, PAGES["en"])[key]
    return words.format(**values) if values else words


def page_html(language: str, key: str, **values) -> str:
    """The words as HTML, the values escaped (the words' own markup kept)."""
    words = PAGES.get(language, PAGES["en"])[key]
    # Our own words, with no value in them: safe as they are.
    return format_html(words, **values) if values else mark_safe(words)  # noqa: S308
