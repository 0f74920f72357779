"""Test helpers for the signup tests: posting a form as a browser would, and running the
delivery engine until the outbox holds what was queued."""

from __future__ import annotations

import html
import re
from email import policy
from email.parser import BytesParser

from django.test import Client

from mailmarketer.delivery import engine, planner
from mailmarketer.lib import outbox
from mailmarketer.signup import spooled
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import PAGE, make_form_token

GOOD = {"email": "ann@example.com", "first_name": "Ann", "company": "Beans Ltd", "consent": "1"}


def form_url(form) -> str:
    return f"/f/{form.workspace.slug}/{form.slug}"


def post(form, data=None, *, client=None, token=None, ingest=True, **extra):
    """A POST of the hosted page with a fresh page token (unless given) and a solved proof of
    work (unless `data` has its own "altcha"). A newsletter form's sign-up is stored by the
    worker after the answer (signup/spooled.py): unless `ingest` is false, the worker's duty
    runs here, so that the test sees it stored."""
    body = {
        "form_token": token if token is not None else make_form_token(form.pk, PAGE),
        "altcha": altcha_payload(form),
    }
    body.update(GOOD if data is None else data)
    client = client or Client(enforce_csrf_checks=True)
    response = client.post(form_url(form), data=body, **extra)
    if ingest:
        spooled.ingest_all()
    return response


def run_engine() -> None:
    """The worker's duties that matter here: the spooled sign-ups stored (and their
    confirmation mails queued), then the delivery engine until it is idle."""
    spooled.ingest_all()
    for _ in range(50):
        if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
            return
    raise AssertionError("the engine did not become idle")


def sent_messages(workspace):
    return [
        BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        for path in sorted(outbox.outbox_dir().glob(f"ws-{workspace.pk}/*.eml"))
    ]


def confirm_path(message) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://[^/\s]+(/f/c/\S+)", body)
    assert match, body
    return match.group(1)


def notice_shown(response) -> str:
    """The words of the consent notice as the page shows them."""
    match = re.search(
        r'<p class="signup-notice" id="consent-notice">(.*?)</p>', response.content.decode(), re.S
    )
    assert match
    return html.unescape(match.group(1))
