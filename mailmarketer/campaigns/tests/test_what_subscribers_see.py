"""What subscribers see (issue 12): the postal address in lines in both footers, the web
version without its own "view in browser" link, the archive without blanks, its index."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.links import view_url
from mailmarketer.campaigns import rendering
from mailmarketer.campaigns.layouts import postal_address
from mailmarketer.campaigns.models import Campaign

pytestmark = pytest.mark.django_db

ADDRESS = "Kaffeerösterei GmbH ,\r\nKaffeestraße 12,\r\n\r\n10115 Berlin"


@pytest.fixture
def shop(personas):
    personas.acme.postal_address = ADDRESS
    personas.acme.save()
    return personas.acme


@pytest.fixture
def sent(shop):
    staff = Actor.system("test")
    news = audience.do_create_list(shop, name="News", slug="news", actor=staff)
    ann = audience.do_create_subscriber(
        shop, email="ann@example.com", first_name="Ann", last_name="Lee", actor=staff
    )
    audience.do_subscribe(ann, [news], actor=staff, reason=Reason.BY_ADMIN)
    campaign = Campaign.objects.create(
        workspace=shop,
        name="Winter",
        subject="{{ subscriber.first_name }}, our winter roast is here",
        body="Hello {{ subscriber.first_name }}, we ship to {{ subscriber.attributes.city }} "
        "in two days. {{ subscriber.last_name | default('Cheers') }}",
        status="finished",
        archive=True,
    )
    campaign.lists.set([news])
    return campaign, ann


def render(campaign):
    context = rendering.sample_context(
        rendering.workspace_context(campaign.workspace), rendering.campaign_context(campaign)
    )
    return rendering.compile_campaign(campaign).render(context)


def test_the_postal_address_is_kept_in_lines():
    assert postal_address(ADDRESS) == "Kaffeerösterei GmbH\nKaffeestraße 12\n10115 Berlin"
    assert postal_address("1 Main Street, Springfield") == "1 Main Street, Springfield"


@pytest.mark.parametrize(
    "body",
    ["Hello **there**", '<p style="color: red">Hi</p><a href="{{ unsubscribe_url }}">x</a>'],
)
def test_both_footers_show_the_address_in_lines(shop, body):
    campaign = Campaign(workspace=shop, name="x", subject="s", body=body)
    if body.startswith("<p"):
        campaign.body_format = "html"
    message = render(campaign)
    assert "Kaffeerösterei GmbH<br>Kaffeestraße 12<br>10115 Berlin" in message.html
    assert " , " not in message.html and ",," not in message.html
    assert "Kaffeerösterei GmbH\nKaffeestraße 12\n10115 Berlin\n" in message.text
    assert not any(line.lstrip().startswith(",") for line in message.text.splitlines())


def test_the_web_version_hides_its_own_view_in_browser_link(client, sent):
    campaign, ann = sent
    url = view_url(campaign.workspace_id, ann.pk, campaign.pk).split("testserver", 1)[1]
    body = client.get(url).content.decode()
    assert "Hello Ann, we ship to" in body
    assert "View this email in your browser" not in body
    # The message itself still has it.
    assert "View this email in your browser" in render(campaign).html


def test_the_archive_fills_in_what_would_be_blank(client, sent):
    campaign, _ = sent
    body = client.get(f"/f/archive/{campaign.uuid}/").content.decode()
    assert "Hello there, we ship to your city in two days. Cheers" in body
    assert "Ann" not in body and "Lee" not in body
    assert "View this email in your browser" not in body


def test_the_archive_index_lists_archived_campaigns(client, sent, personas):
    campaign, _ = sent
    hidden = Campaign.objects.create(
        workspace=personas.acme, name="Secret", subject="Not archived", status="finished"
    )
    response = client.get("/archive/acme/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'href="/f/archive/{campaign.uuid}/"' in body
    assert "there, our winter roast is here" in body  # the subject, rendered like the archive
    assert hidden.subject not in body and str(hidden.uuid) not in body
    assert client.get("/archive/evil/").status_code == 404
    assert client.get("/archive/no-such-workspace/").status_code == 404


def test_the_campaign_page_shows_the_archive_link(alice_client, sent):
    campaign, _ = sent
    from django.urls import reverse

    page = alice_client.get(
        reverse("campaign", kwargs={"ws": "acme", "campaign_id": campaign.pk})
    ).content.decode()
    assert f'href="/f/archive/{campaign.uuid}/"' in page
    assert 'href="/archive/acme/"' in page
