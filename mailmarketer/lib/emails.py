"""The one module that sends system mail (invitations, password resets, later notices to staff).

Each email is three templates under `templates/emails/`: `<name>-subject.txt`,
`<name>-body.txt` and `<name>-body.html`. Every message gets a Message-ID on our own domain. Mail
goes through Django's email backend: the outbox (`var/outbox/`) when MM_SMTP_URL is unset, the
configured relay otherwise. Callers inside a transaction send from `transaction.on_commit`, so a
rolled-back change never mails anyone.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid
from django.template.loader import render_to_string

from mailmarketer.lib import outbox

logger = logging.getLogger(__name__)


def render(name: str, context: dict) -> tuple[str, str, str]:
    ctx = {"base_url": settings.BASE_URL, **context}
    subject = render_to_string(f"emails/{name}-subject.txt", ctx)
    # A subject is one line: a stray newline in a template (or a value) must not become a header.
    subject = " ".join(subject.split())
    text = render_to_string(f"emails/{name}-body.txt", ctx)
    html = render_to_string(f"emails/{name}-body.html", ctx)
    return subject, text, html


def send(
    name: str,
    *,
    to: str,
    context: dict,
    headers: dict | None = None,
    workspace_id: int | None = None,
) -> str:
    """Render and send one system email; returns its Message-ID. Mail sent on behalf of a
    workspace names it, so the local outbox shows it in that workspace only."""
    subject, text, html = render(name, context)
    message_id = make_msgid(domain=settings.MESSAGE_ID_DOMAIN)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"Message-ID": message_id, "Auto-Submitted": "auto-generated", **(headers or {})},
    )
    message.attach_alternative(html, "text/html")
    message.outbox_scope = (
        outbox.workspace_scope(workspace_id) if workspace_id is not None else outbox.SYSTEM_SCOPE
    )
    message.send(fail_silently=False)
    logger.info("sent system email %s %s", name, message_id)
    return message_id
