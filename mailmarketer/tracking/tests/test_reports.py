"""Campaign reports (page and API) and the person's activity timeline: the numbers equal what
was clicked, read from the roll-ups; who may see them (the role matrix); hostile user agents
shown escaped; the timeline masked without personal-data permission and audited with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.permissions import Role
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import client_for, events, make_member, make_token, make_user, url
from mailmarketer.tracking import queries, rollups
from mailmarketer.tracking.testing import ingest, send_campaign, tracked_links

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
XSS = '"><script>alert("ua")</script><img src=x onerror=alert(1)>'


def path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].partition("/")[2]


@pytest.fixture
def clicked(ws, news, people, client, monkeypatch):
    """Person 0 opens and clicks both links (a second apart, after a minute), person 1 clicks
    the first link twice with a hostile user agent, a scanner follows person 2's first link."""
    campaign = send_campaign(ws, [news])
    Delivery.objects.filter(campaign=campaign).update(sent_at=now() - timedelta(minutes=5))
    links0, pixel0 = tracked_links(people[0])
    links1, _ = tracked_links(people[1])
    links2, _ = tracked_links(people[2])
    client.get(path_of(pixel0), HTTP_USER_AGENT=BROWSER)
    client.get(path_of(links0[0]), HTTP_USER_AGENT=BROWSER)
    client.get(path_of(links1[0]), HTTP_USER_AGENT=XSS + " Firefox")
    client.get(path_of(links1[0]), HTTP_USER_AGENT=XSS + " Firefox")
    client.get(path_of(links2[0]), HTTP_USER_AGENT="Mimecast Link Scanner")
    ingest()
    monkeypatch.setattr(rollups, "LAG_SECONDS", 0)
    while rollups.roll_up_one():
        pass
    return campaign


def test_it_reports_what_was_clicked(clicked):
    report = queries.campaign_report(clicked)
    assert report.delivered == 3 and report.bounced == 0
    assert (report.human.unique_opens, report.human.opens) == (2, 1)  # a click is an open
    assert (report.human.unique_clicks, report.human.clicks) == (2, 3)
    assert (report.machine.unique_clicks, report.machine.clicks) == (1, 1)
    assert report.ctr == pytest.approx(66.7) and report.click_to_open == 100.0
    first, second = report.links
    assert first["url"] == "https://acme.test/post?a=1&b=2"
    assert (first["unique_clicks"], first["clicks"], first["machine"]) == (2, 3, 1)
    assert (second["clicks"], second["machine"]) == (0, 0)
    assert report.domains[0]["domain"] == "example.com"
    assert report.domains[0]["unique_opens"] == 2
    assert sum(report.chart.series["Clicks"]) == 3
    assert sum(report.chart.series["Machine clicks"]) == 1
    assert set(row["grain"] for row in report.chart.rows) == {"hour"}


def test_it_shows_the_report_with_a_chart_and_its_table(clicked, carol_client):
    response = carol_client.get(url("campaign-report", campaign_id=clicked.pk))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-chart="campaign-' in page and "chart-table" in page
    assert "uplot.iife.min.js" in page and "<script>" not in page
    assert "https://acme.test/post?a=1&amp;b=2" in page


def test_it_compares_two_campaigns(clicked, ws, news, carol_client):
    other = send_campaign(ws, [news], name="Winter news")
    response = carol_client.get(
        url("campaign-report", campaign_id=clicked.pk) + f"?compare={other.pk}"
    )
    assert response.status_code == 200
    assert "Winter news</th>" in response.content.decode()


@pytest.fixture
def support(personas):
    user = make_user("sam@acme.test", "Sam")
    make_member(personas.acme, user, Role.SUPPORT)
    return client_for(user)


def test_it_lets_only_those_who_read_reports_see_the_report(
    clicked, alice_client, bob_client, support, mallory_client
):
    page = url("campaign-report", campaign_id=clicked.pk)
    assert alice_client.get(page).status_code == 200
    assert bob_client.get(page).status_code == 200
    assert support.get(page).status_code == 403
    assert mallory_client.get(page).status_code in (403, 404)
    assert (
        mallory_client.get(url("campaign-report", ws="evil", campaign_id=clicked.pk)).status_code
        == 404
    )


def test_it_serves_the_report_in_the_api(clicked, personas, client):
    analyst = make_token(personas.acme, Role.ANALYST)
    response = client.get(
        f"/api/v1/campaigns/{clicked.uuid}/report", HTTP_AUTHORIZATION=f"Bearer {analyst.raw}"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["delivered"] == 3 and body["human"]["unique_clicks"] == 2
    assert body["machine"]["clicks"] == 1
    assert body["links"][0]["clicks"] == 3
    assert sum(point["clicks"] for point in body["over_time"]) == 3
    support = make_token(personas.acme, Role.SUPPORT)
    refused = client.get(
        f"/api/v1/campaigns/{clicked.uuid}/report", HTTP_AUTHORIZATION=f"Bearer {support.raw}"
    )
    assert refused.status_code == 403
    evil = make_token(personas.evil, Role.OWNER)
    hidden = client.get(
        f"/api/v1/campaigns/{clicked.uuid}/report", HTTP_AUTHORIZATION=f"Bearer {evil.raw}"
    )
    assert hidden.status_code == 404


def test_it_shows_a_persons_timeline_escaped_and_audited(clicked, people, alice_client):
    page = url("subscriber-activity", sid=str(people[1].uuid))
    response = alice_client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Clicked" in html and "Message sent" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;ua&quot;)" in html
    assert len(events("subscriber.activity_viewed")) == 1


def test_it_masks_the_timeline_without_personal_data_permission(clicked, people, carol_client):
    response = carol_client.get(url("subscriber-activity", sid=str(people[1].uuid)))
    html = response.content.decode()
    assert response.status_code == 200 and "Clicked" in html
    assert "Firefox" not in html and "•••" in html
    assert not events("subscriber.activity_viewed")


def test_it_hides_another_workspaces_person(clicked, people, mallory_client):
    page = url("subscriber-activity", ws="evil", sid=str(people[1].uuid))
    assert mallory_client.get(page).status_code == 404


def test_it_loads_the_timeline_on_the_persons_page(clicked, people, alice_client):
    page = alice_client.get(url("audience-subscriber", sid=str(people[1].uuid)))
    assert url("subscriber-activity", sid=str(people[1].uuid)) in page.content.decode()


def test_it_shows_hostile_link_urls_escaped_in_the_report(clicked, people, carol_client):
    """A link's stored URL is captured text too (the campaign's author may paste anything);
    the report, its per-link table and the chart data show it escaped."""
    from mailmarketer.audience.links import click_token
    from mailmarketer.campaigns.models import CampaignLink

    hostile = CampaignLink.objects.create(
        campaign=clicked, url='https://acme.test/?q="><script>alert("link")</script>', position=9
    )
    row = Delivery.objects.get(campaign=clicked, subscriber=people[0])
    from django.test import Client

    response = Client().get(f"/t/c/{click_token(row.pk, hostile.pk)}", HTTP_USER_AGENT=XSS)
    assert response["Location"].startswith("https://acme.test/?q=%22%3E%3Cscript")  # encoded
    ingest()
    while rollups.roll_up_one():
        pass
    page = carol_client.get(url("campaign-report", campaign_id=clicked.pk)).content.decode()
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&quot;link&quot;)&lt;/script&gt;" in page
