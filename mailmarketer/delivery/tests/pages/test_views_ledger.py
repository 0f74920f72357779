"""The delivery ledger page (status filter, keyset pages of 50, masking, SMTP replies escaped,
one audit row per unmasked page) and its CSV export (permissions, neutralised formulas,
audited, streamed)."""

from __future__ import annotations

import csv
import io
import re

import pytest

from mailmarketer.audience import actions as audience
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import SETUP, events, launched, ledger_rows, many_people, relay, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(draft, people, ws):
    campaign = launched(draft)
    server = relay(ws)
    rows = ledger_rows(campaign, people, ["sent", "failed", "queued"])
    Delivery.objects.filter(pk=rows[0].pk).update(smtp_reply="250 2.0.0 Ok: queued", server=server)
    Delivery.objects.filter(pk=rows[1].pk).update(
        smtp_reply="550 5.1.1 <script>alert(1)</script> no such user"
    )
    return campaign


def rendered_rows(html: str) -> list[str]:
    return re.findall(r'<tr>\s*<th scope="row">(?:<a [^>]*>)?([^<]+)', html)


def test_it_lists_the_ledger_with_replies_escaped(bob_client, sent):
    response = bob_client.get(url("campaign-ledger", campaign_id=sent.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert rendered_rows(html) == [
        "person0@example.com",
        "person1@example.com",
        "person2@example.com",
    ]
    assert "250 2.0.0 Ok: queued" in html and "Main relay" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    (event,) = events("subscriber.listed")
    assert event.new == {"count": 3}


def test_it_filters_the_ledger_by_status(bob_client, sent):
    html = bob_client.get(url("campaign-ledger", campaign_id=sent.pk) + "?status=failed")
    assert rendered_rows(html.content.decode()) == ["person1@example.com"]
    assert 'Failed <span class="muted">(1)</span>' in html.content.decode()
    bad = bob_client.get(url("campaign-ledger", campaign_id=sent.pk) + "?status=lost")
    assert bad.status_code == 400
    assert rendered_rows(bad.content.decode()) == []


def test_it_pages_the_ledger_fifty_rows_at_a_time_in_id_order(bob_client, draft, ws, news):
    people = many_people(ws, [news], 120)
    campaign = launched(draft)
    rows = ledger_rows(campaign, people, ["queued"] * 120)
    base = url("campaign-ledger", campaign_id=campaign.pk)
    seen = []
    page_url = base
    for _ in range(3):
        html = bob_client.get(page_url).content.decode()
        seen += rendered_rows(html)
        found = re.search(r'<a href="\?([^"]+)" rel="next">', html)
        if found is None:
            break
        page_url = base + "?" + found.group(1).replace("&amp;", "&")
    assert len(seen) == 120
    assert seen == [p.email for p in people]
    assert page_url == f"{base}?after={rows[99].pk}"
    assert [e.new["count"] for e in events("subscriber.listed")] == [50, 50, 20]


def test_it_masks_the_ledger_for_an_analyst_without_an_audit_row(carol_client, sent):
    response = carol_client.get(url("campaign-ledger", campaign_id=sent.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert rendered_rows(html) == ["p•••@example.com"] * 3
    assert "person0" not in html
    assert "/audience/subscribers/" not in html
    assert "Export CSV" not in html
    assert not events("subscriber.listed")


def test_it_masks_addresses_inside_the_relays_reply_for_an_analyst(carol_client, bob_client, sent):
    reply = "550 5.1.1 <person1@acme-cust.test>: Recipient address rejected"
    Delivery.objects.filter(campaign=sent, status="failed").update(smtp_reply=reply)
    html = carol_client.get(url("campaign-ledger", campaign_id=sent.pk)).content.decode()
    assert "person1@" not in html
    assert "&lt;p•••@acme-cust.test&gt;: Recipient address rejected" in html
    html = bob_client.get(url("campaign-ledger", campaign_id=sent.pk)).content.decode()
    assert "&lt;person1@acme-cust.test&gt;: Recipient address rejected" in html


def test_it_shows_an_erased_person_as_erased(bob_client, sent, people):
    audience.do_erase_subscriber(people[0], actor=SETUP)
    html = bob_client.get(url("campaign-ledger", campaign_id=sent.pk)).content.decode()
    assert rendered_rows(html)[0] == "(erased)"


def test_it_hides_the_ledger_from_mallory(mallory_client, sent, evil_draft):
    assert mallory_client.get(url("campaign-ledger", campaign_id=sent.pk)).status_code == 404
    theirs = url("campaign-ledger", ws="evil", campaign_id=sent.pk)
    assert mallory_client.get(theirs).status_code == 404


# -- export ----------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_it_exports_the_ledger_as_csv_and_audits_it(bob_client, sent, people, personas):
    response = bob_client.post(url("campaign-ledger-export", campaign_id=sent.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == [
        "ledger_id",
        "subscriber_uuid",
        "email",
        "status",
        "attempts",
        "sent_at",
        "smtp_reply",
        "server",
        "message_id",
    ]
    assert [r[2] for r in rows[1:]] == [p.email for p in people]
    assert [r[3] for r in rows[1:]] == ["sent", "failed", "queued"]
    assert rows[1][6:8] == ["250 2.0.0 Ok: queued", "Main relay"]
    (event,) = events("audience.exported")
    assert event.actor_user == personas.bob
    assert event.object_type == "campaign" and event.object_id == str(sent.pk)
    assert event.new["count"] == 3 and event.new["members"] == "ledger:all"


def test_it_exports_one_status(bob_client, sent):
    response = bob_client.post(
        url("campaign-ledger-export", campaign_id=sent.pk), {"status": "failed"}
    )
    rows = read_csv(response)
    assert [r[3] for r in rows[1:]] == ["failed"]
    assert events("audience.exported")[0].new["members"] == "ledger:failed"
    bad = bob_client.post(url("campaign-ledger-export", campaign_id=sent.pk), {"status": "x"})
    assert bad.status_code == 400
    assert len(events("audience.exported")) == 1


def test_it_neutralises_formulas_in_the_export(bob_client, draft, ws, news):
    person = audience.do_create_subscriber(ws, email="=cmd@example.com", actor=SETUP)
    campaign = launched(draft)
    (row,) = ledger_rows(campaign, [person], ["failed"])
    Delivery.objects.filter(pk=row.pk).update(smtp_reply='=HYPERLINK("http://evil.test","x")')
    rows = read_csv(bob_client.post(url("campaign-ledger-export", campaign_id=campaign.pk)))
    assert rows[1][2] == "'=cmd@example.com"
    assert rows[1][6] == '\'=HYPERLINK("http://evil.test","x")'
    assert rows[1][4] == "1"  # numbers stay numbers


def test_it_refuses_the_export_without_export_or_personal_data(carol_client, sent, personas):
    from mailmarketer.accounts.models import Membership

    assert carol_client.post(url("campaign-ledger-export", campaign_id=sent.pk)).status_code == 403
    # Support sees personal data but may not export; the page offers no export either.
    Membership.objects.filter(user=personas.carol).update(role="support")
    response = carol_client.post(url("campaign-ledger-export", campaign_id=sent.pk))
    assert response.status_code == 403
    assert not events("audience.exported")


def test_it_lets_mallory_export_nothing_of_acme(mallory_client, sent, evil_draft):
    assert (
        mallory_client.post(url("campaign-ledger-export", campaign_id=sent.pk)).status_code == 404
    )
    theirs = url("campaign-ledger-export", ws="evil", campaign_id=sent.pk)
    assert mallory_client.post(theirs).status_code == 404
    assert not events("audience.exported")
