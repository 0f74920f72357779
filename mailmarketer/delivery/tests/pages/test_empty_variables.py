"""The empty-variable warning on the page before sending and on the preview page (a fragment
of a sample of the campaign's real recipients), addresses masked per the viewer's role."""

from __future__ import annotations

from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns.models import Campaign
from mailmarketer.testing import SETUP, url


def _personalise(draft):
    Campaign.objects.filter(pk=draft.pk).update(
        subject="Hello {{ subscriber.first_name }}",
        body="Dear {{ subscriber.last_name }}, from {{ subscriber.attributes.city | default('') }}",
    )


def test_the_send_page_names_the_variable_with_real_examples(bob_client, ws, news, draft, people):
    _personalise(draft)
    html = bob_client.get(url("campaign-start", campaign_id=draft.pk)).content.decode()
    assert "3 would see nothing where <code>{{ subscriber.last_name }}</code>" in html
    assert "person0@example.com" in html  # bob sees personal data
    assert "subscriber.first_name }}</code>" not in html  # made from "Person 0"


def test_the_preview_fragment_masks_examples_for_an_analyst(carol_client, ws, news, draft, people):
    _personalise(draft)
    page = carol_client.get(url("campaign-preview", campaign_id=draft.pk)).content.decode()
    fragment_url = url("campaign-empty-variables", campaign_id=draft.pk)
    assert fragment_url in page
    html = carol_client.get(fragment_url).content.decode()
    assert "<code>{{ subscriber.last_name }}</code>" in html
    assert "p•••@example.com" in html and "person0@example.com" not in html


def test_the_fragment_counts_only_the_audience(bob_client, ws, news, draft, people):
    _personalise(draft)
    other = audience.do_create_list(ws, name="Staff", slug="staff", actor=SETUP)
    named = audience.do_create_subscriber(
        ws, email="ann@example.com", first_name="Ann", last_name="Berg", actor=SETUP
    )
    audience.do_subscribe(named, [other], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
    for p in people:
        p.last_name = "Doe"
        p.save(update_fields=["last_name"])
    html = bob_client.get(url("campaign-empty-variables", campaign_id=draft.pk)).content.decode()
    assert "Every variable has a value for the 3 recipients sampled" in html


def test_the_fragment_is_refused_to_another_workspace(mallory_client, draft):
    response = mallory_client.get(
        url("campaign-empty-variables", campaign_id=draft.pk).replace("/acme/", "/evil/")
    )
    assert response.status_code == 404
