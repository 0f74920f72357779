"""Email opens and clicks, end to end: a campaign sent by the real engine to the outbox, its
tracked links followed with the test client, the hits spooled and ingested as the worker does,
what is stored (one event per hit, facts for a person's identified events, nothing for off),
the machine flags, and forged tokens."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.links import click_token, open_token
from mailmarketer.audience.models import ConsentRecord, Fact, FactKind
from mailmarketer.campaigns.models import CampaignLink
from mailmarketer.delivery.models import Delivery
from mailmarketer.tracking import mail
from mailmarketer.tracking.models import AgentClass, EmailEvent, MachineReason
from mailmarketer.tracking.testing import ingest, send_campaign, sent_parts, tracked_links
from mailmarketer.tracking.views_mail import PIXEL

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


@pytest.fixture
def sent(ws, news, people):
    campaign = send_campaign(ws, [news])
    # Long enough ago that a click is a person's, not a scanner's at delivery.
    Delivery.objects.filter(campaign=campaign).update(sent_at=now() - timedelta(minutes=5))
    return campaign


def path_of(url: str) -> str:
    return url.split("://", 1)[1].partition("/")[2].join(["/", ""])


def follow(client, url, agent=BROWSER, method="get"):
    """The request, then the worker's ingestion of what it spooled."""
    response = getattr(client, method)(path_of(url), HTTP_USER_AGENT=agent)
    ingest()
    return response


def test_it_rewrites_each_stored_link_per_recipient_and_adds_a_pixel(sent, people):
    first, _ = tracked_links(people[0])
    second, pixel = tracked_links(people[1])
    assert len(first) == 2 and len(second) == 2
    assert set(first).isdisjoint(second)  # each recipient's own tokens
    assert "/t/o/" in pixel
    html, text = sent_parts()[people[0].email]
    assert "https://acme.test/post" not in html and "https://shop.acme.test/" not in html
    assert "/t/c/" in text and "https://shop.acme.test/" not in text
    assert "/f/u/" in html  # the unsubscribe link is not a tracked link


def test_it_redirects_a_click_to_the_stored_url_and_records_it(client, sent, people):
    links, _ = tracked_links(people[0])
    response = follow(client, links[0])
    assert response.status_code == 302
    assert response["Location"] == "https://acme.test/post?a=1&b=2"
    (event,) = EmailEvent.objects.all()
    assert event.kind == "click" and event.subscriber_id == people[0].pk
    assert event.agent_class == AgentClass.BROWSER and not event.machine
    assert event.first_open and event.first_click and event.first_link_click
    keys = set(Fact.objects.filter(subscriber=people[0]).values_list("kind", "object_key"))
    link = CampaignLink.objects.get(campaign=sent, url="https://acme.test/post?a=1&b=2")
    assert keys == {
        (FactKind.OPENED, f"campaign:{sent.pk}"),
        (FactKind.CLICKED, f"campaign:{sent.pk}"),
        (FactKind.CLICKED, f"link:{link.pk}"),
    }


def test_it_serves_the_pixel_uncached_and_records_an_open(client, sent, people):
    _, pixel = tracked_links(people[0])
    response = follow(client, pixel)
    assert response.status_code == 200 and response.content == PIXEL and len(PIXEL) == 43
    assert response["Content-Type"] == "image/gif"
    assert "no-store" in response["Cache-Control"]
    follow(client, pixel)
    first, again = EmailEvent.objects.order_by("id")
    assert (first.kind, first.first_open, again.first_open) == ("open", True, False)
    assert Fact.objects.get(subscriber=people[0], kind=FactKind.OPENED).count == 2


def test_it_refuses_forged_tokens_and_changes_nothing(client, sent, people):
    links, pixel = tracked_links(people[0])
    delivery_id, link_id, _ = links[0].rpartition("/")[2].split(".")
    other = CampaignLink.objects.create(campaign=sent, url="https://evil.test/", position=99)
    forged = [
        links[0][:-1] + ("A" if links[0][-1] != "A" else "B"),
        f"/t/c/{delivery_id}.{link_id}",
        f"/t/c/{int(delivery_id) + 1}.{link_id}.{links[0].rpartition('.')[2]}",
        f"/t/c/{delivery_id}.{other.pk}.{links[0].rpartition('.')[2]}",
        "/t/c/https%3A%2F%2Fevil.test%2F",
        "/t/c/" + "9" * 40 + ".1.x",
    ]
    for url in forged:
        response = client.get(url, HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 404, url
        assert "Location" not in response
        if url == forged[0]:  # the view's own page, readable on the phone it was tapped on
            assert b"Link not valid" in response.content
            assert b'name="viewport"' in response.content and b'lang="en"' in response.content
    assert client.get(pixel[:-2] + "xx").content == PIXEL  # an image still, nothing stored
    ingest()
    assert not EmailEvent.objects.exists() and not Fact.objects.exists()


def test_it_stores_nothing_for_a_link_of_another_campaign_even_when_signed(
    client, ws, news, sent, people
):
    """Only we can sign a pair, so the edge trusts the link id it names and goes to that
    link's stored URL (never anywhere else); ingestion, which knows the ledger row's campaign,
    stores nothing for a pair that does not match."""
    other = send_campaign(ws, [news], name="Other", body="[x](https://other.acme.test/)")
    row = Delivery.objects.filter(campaign=sent).first()
    foreign = CampaignLink.objects.get(campaign=other)
    response = client.get(f"/t/c/{click_token(row.pk, foreign.pk)}")
    assert response.status_code == 302 and response["Location"] == foreign.url
    ingest()
    assert not EmailEvent.objects.exists() and not Fact.objects.exists()


def test_it_counts_people_anonymously_in_anonymous_mode(client, ws, sent, people):
    ws.tracking_mode = TrackingMode.ANONYMOUS
    ws.save()
    links, _ = tracked_links(people[0])
    assert follow(client, links[0]).status_code == 302
    (event,) = EmailEvent.objects.all()
    assert event.subscriber_id is None and event.delivery_id is None and event.recipient_key
    assert not Fact.objects.exists()


def test_it_neither_rewrites_nor_adds_a_pixel_when_tracking_is_off(ws, news, people):
    send_campaign(ws, [news], tracking_mode=TrackingMode.OFF)
    html, text = sent_parts()[people[0].email]
    assert "https://acme.test/post?a=1&amp;b=2" in html and "/t/c/" not in html
    assert "/t/o/" not in html and "/t/c/" not in text


def test_it_stores_nothing_when_tracking_was_turned_off_after_sending(client, sent, people):
    sent.tracking_mode = TrackingMode.OFF
    sent.save()
    links, _ = tracked_links(people[0])
    assert follow(client, links[0]).status_code == 302
    assert not EmailEvent.objects.exists()


def test_it_needs_tracking_consent_where_the_workspace_requires_it(client, ws, sent, people):
    ws.tracking_requires_consent = True
    ws.save()
    ConsentRecord.objects.create(
        workspace=ws,
        subscriber=people[1],
        purpose="tracking",
        action=ConsentRecord.Action.GRANT,
        source_type=ConsentRecord.SourceType.FORM,
        confirmed_at=now(),  # given where no confirmation mail was due
    )
    follow(client, tracked_links(people[0])[0][0])
    follow(client, tracked_links(people[1])[0][0])
    anonymous, identified = EmailEvent.objects.order_by("id")
    assert anonymous.subscriber_id is None
    assert identified.subscriber_id == people[1].pk
    assert set(Fact.objects.values_list("subscriber_id", flat=True)) == {people[1].pk}


@pytest.mark.parametrize(
    ("agent", "method", "reason"),
    [
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "get", MachineReason.SCANNER_AGENT),
        ("", "get", MachineReason.SCANNER_AGENT),
        ("python-requests/2.32", "get", MachineReason.SCANNER_AGENT),
        (BROWSER, "head", MachineReason.HEAD),
    ],
)
def test_it_keeps_and_flags_link_scanners(client, sent, people, agent, method, reason):
    links, _ = tracked_links(people[0])
    response = follow(client, links[0], agent=agent, method=method)
    assert response.status_code == 302
    (event,) = EmailEvent.objects.all()
    assert event.machine and event.machine_reason == reason
    assert not Fact.objects.exists()  # a scanner's click is nobody's behaviour


def test_it_flags_a_click_within_seconds_of_delivery(client, sent, people):
    Delivery.objects.filter(campaign=sent).update(sent_at=now() - timedelta(seconds=2))
    follow(client, tracked_links(people[0])[0][0])
    assert EmailEvent.objects.get().machine_reason == MachineReason.FAST


def test_it_flags_every_link_of_a_message_clicked_at_once(client, sent, people):
    links, _ = tracked_links(people[0])
    follow(client, links[0])
    follow(client, links[1])
    first, second = EmailEvent.objects.order_by("id")
    assert not first.machine
    assert second.machine and second.machine_reason == MachineReason.BURST


@pytest.mark.parametrize(
    ("agent", "agent_class"),
    [
        ("Mozilla/5.0", AgentClass.APPLE_MPP),
        ("Mozilla/5.0 (Windows NT 5.1) (via ggpht.com GoogleImageProxy)", AgentClass.GOOGLE_PROXY),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "yahoo_proxy"),
    ],
)
def test_it_keeps_and_flags_proxy_opens(client, sent, people, agent, agent_class):
    _, pixel = tracked_links(people[0])
    follow(client, pixel, agent=agent)
    (event,) = EmailEvent.objects.all()
    assert event.machine and event.agent_class == agent_class
    assert event.machine_reason == MachineReason.PROXY


def test_it_keeps_a_hostile_user_agent_as_capped_text(client, sent, people):
    payload = "<script>alert(1)</script>" + "x" * 1000
    follow(client, tracked_links(people[0])[1], agent=payload)
    event = EmailEvent.objects.get()
    assert event.user_agent == payload[:256]


def test_it_keeps_only_the_network_of_an_address(client, sent, people):
    assert mail.stored_ip("203.0.113.77") == "203.0.113.0"
    assert mail.stored_ip("2001:db8:1:2:3::9") == "2001:db8:1::"
    assert mail.stored_ip("not an address") is None
    assert mail.stored_ip("256.1.2.3") is None and mail.stored_ip("01.2.3.4") is None
    assert mail.stored_ip("10.20.30.40") == "10.20.30.0" and mail.stored_ip("1.2.3.4 ") is None
    client.get(path_of(tracked_links(people[0])[1]), REMOTE_ADDR="198.51.100.23")
    ingest()
    assert EmailEvent.objects.get().ip == "198.51.100.0"


def test_it_still_redirects_when_the_event_cannot_be_spooled(client, sent, people, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", broken)
    monkeypatch.setattr(os, "pwrite", broken)
    links, pixel = tracked_links(people[0])
    response = follow(client, links[0])
    assert response.status_code == 302 and response["Location"].startswith("https://acme.test/")
    assert follow(client, pixel).content == PIXEL


def test_it_erases_a_persons_events_with_them(client, sent, people):
    from mailmarketer.audience import actions as audience
    from mailmarketer.testing import SETUP

    follow(client, tracked_links(people[0])[0][0])
    assert open_token(1)  # tokens are made without a database
    audience.do_erase_subscriber(people[0], actor=SETUP)
    assert not EmailEvent.objects.filter(subscriber__isnull=False).exists()


def test_it_refuses_an_unknown_tracking_mode_for_a_campaign(ws, news):
    from mailmarketer.accounts.actions import ActionError
    from mailmarketer.campaigns import actions
    from mailmarketer.testing import SETUP

    with pytest.raises(ActionError) as info:
        actions.do_create_campaign(ws, actor=SETUP, name="x", subject="y", tracking_mode="all")
    assert info.value.field == "tracking_mode"


def test_it_lets_the_campaign_form_choose_the_tracking_mode(ws, news, bob_client):
    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.testing import url

    response = bob_client.post(
        url("campaign-new"),
        {
            "name": "Quiet news",
            "subject": "Hi",
            "body_format": "markdown",
            "body": "Hello",
            "text_body": "",
            "layout": "",
            "lists": [str(news.pk)],
            "tracking_mode": "off",
            "headers-TOTAL_FORMS": "0",
            "headers-INITIAL_FORMS": "0",
            "headers-MIN_NUM_FORMS": "0",
            "headers-MAX_NUM_FORMS": "20",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Campaign.objects.get(name="Quiet news").tracking_mode == "off"
