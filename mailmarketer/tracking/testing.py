"""Test support for tracking's tests (imported by them, never by product code): a campaign with
links sent to the local outbox through the real engine, and the tracked URLs each message got."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns import actions
from mailmarketer.delivery import engine, planner
from mailmarketer.lib import outbox
from mailmarketer.testing import SETUP, launched

BODY = (
    "Hello {{ subscriber.first_name }}, read [the post](https://acme.test/post?a=1&b=2) "
    "or [the shop](https://shop.acme.test/)."
)
_HREF = re.compile(r'href="([^"]+)"')
_SRC = re.compile(r'<img src="([^"]+/t/o/[^"]+)"')


def run_engine(limit: int = 200) -> None:
    for _ in range(limit):
        if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
            return
    raise AssertionError("the engine did not become idle")


def send_campaign(workspace, lists, *, body: str = BODY, name: str = "Autumn news", **fields):
    """A campaign written, launched and sent to the outbox by the real engine."""
    campaign = actions.do_create_campaign(
        workspace, actor=SETUP, name=name, subject="Hi", body=body, lists=lists, **fields
    )
    campaign = launched(campaign)
    engine.reset_state()
    run_engine()
    campaign.refresh_from_db()
    return campaign


def sent_parts() -> dict[str, tuple[str, str]]:
    """{recipient address: (html, text)} of every message in the outbox."""
    found = {}
    for path in outbox.outbox_dir().glob("*/*.eml"):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        text, html = outbox.message_parts(message)
        found[str(message["To"]).rpartition("<")[2].rstrip(">")] = (html or "", text or "")
    return found


def tracked_links(person: Subscriber) -> tuple[list[str], str]:
    """(the click URLs in the person's HTML part, their open pixel URL)."""
    html, _ = sent_parts()[person.email]
    clicks = [u for u in _HREF.findall(html) if "/t/c/" in u]
    pixel = _SRC.search(html)
    return clicks, pixel.group(1) if pixel else ""


def ingest() -> int:
    """What the worker does with the email hits the edge spooled: hands this process's open
    spool file over and stores every hit (mail_ingest); the number of rounds."""
    from mailmarketer.tracking import mail_ingest, mail_spool

    mail_spool.spool.close()
    return mail_ingest.ingest_all()
