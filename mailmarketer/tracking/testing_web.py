"""Test support for website tracking (used by tracking's tests only): a site, a hit posted as
the snippet posts it, and a browser's user agent."""

from __future__ import annotations

import json

from mailmarketer.audience.models import ConsentRecord

from .models_web import Site

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ORIGIN = "https://acme.test"


def make_site(workspace, domain="acme.test", **fields) -> Site:
    fields.setdefault("origins", f"https://{domain}\nhttps://www.{domain}")
    return Site.objects.create(workspace=workspace, name=domain, domain=domain, **fields)


def post_hit(client, site, *, origin=ORIGIN, ua=CHROME, ip="203.0.113.77", headers=None, **data):
    body = {"s": site.key, "k": "p", "u": "https://acme.test/", "r": "", "t": "Home", **data}
    return client.post(
        "/t/e",
        data=json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        HTTP_ORIGIN=origin,
        HTTP_USER_AGENT=ua,
        REMOTE_ADDR=ip,
        **(headers or {}),
    )


def ingest() -> int:
    """What the worker does a moment after hits were posted: the web process hands over its
    spool file and its counters, and every finished file is stored."""
    from . import views_web, web_ingest

    web_ingest.spool.close()
    views_web.flush_counts(force=True)
    return web_ingest.ingest_all()


def grant_tracking(person, action=ConsentRecord.Action.GRANT) -> None:
    ConsentRecord.objects.create(
        workspace_id=person.workspace_id,
        subscriber=person,
        purpose="tracking",
        action=action,
        source_type=ConsentRecord.SourceType.FORM,
    )
