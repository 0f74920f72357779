"""The page before sending (issue 12): how many get it now, the subject as one of them sees it,
the sender, where it goes, and empty personalisation in a sample of real recipients."""

from __future__ import annotations

import re

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.emails import mask_email
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery.models import Delivery
from mailmarketer.delivery.planner import plan_chunk
from mailmarketer.delivery.send_check import _references, send_check
from mailmarketer.testing import SETUP, relay, url

ACTOR = Actor.system("test")


def _page(client, campaign) -> str:
    response = client.get(url("campaign-start", campaign_id=campaign.pk))
    assert response.status_code == 200
    return response.content.decode()


def _count(html: str) -> int:
    return int(re.search(r'id="send-count" data-count="(\d+)"', html).group(1))


def test_it_counts_who_gets_it_now_as_the_ledger_will(bob_client, ws, news, draft, people):
    other = audience.do_create_list(ws, name="Staff", slug="staff", actor=SETUP)
    audience.do_subscribe(people[1], [other], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
    draft.exclude_lists.set([other])
    audience.do_add_suppression(ws, email=people[2].email, actor=ACTOR)
    html = _page(bob_client, draft)
    assert _count(html) == 1  # three on the list, one excluded, one suppressed
    assert "Send to 1 person now" in html

    response = bob_client.post(url("campaign-start", campaign_id=draft.pk))
    assert response.status_code == 302
    draft.refresh_from_db()
    plan_chunk(draft)
    planned = set(Delivery.objects.filter(campaign=draft).values_list("subscriber_id", flat=True))
    # The ledger plans the excluded-list filter now and the suppression at send time.
    assert planned == {people[0].pk, people[2].pk}
    assert len(planned - {people[2].pk}) == _count(html)


def test_it_says_the_outbox_delivers_to_nobody_until_a_relay_exists(bob_client, ws, draft, people):
    html = _page(bob_client, draft)
    assert "the local outbox: nobody receives it" in html
    relay(ws, name="Company Postfix")
    html = _page(bob_client, draft)
    assert "Company Postfix" in html and "nobody receives it" not in html


def test_it_shows_the_subject_as_a_sample_recipient_sees_it(bob_client, ws, draft, people):
    html = _page(bob_client, draft)
    assert "“Hello Person” " in html  # first_name from "Person 0"
    assert f"as {mask_email(people[0].email)} sees it" in html
    assert people[0].email not in html  # the sample recipient is masked
    assert f"{ws.sender_name or ws.name}" in html


def test_it_warns_of_empty_variables_in_real_recipients(bob_client, ws, news, draft, people):
    Campaign.objects.filter(pk=draft.pk).update(
        subject="{{ subscriber.attributes.city }} news",
        body="Hi {{ subscriber.first_name | default('there') }}, {{ subscriber.attributes.city }}",
    )
    people[0].attributes = {"city": "Berlin"}
    people[0].save(update_fields=["attributes"])
    check = send_check(Campaign.objects.get(pk=draft.pk))
    (city,) = check.empty
    assert city.expression == "subscriber.attributes.city"
    assert city.empty == 2 and len(city.examples) == 2
    html = _page(bob_client, draft)
    assert "2 would see nothing where <code>{{ subscriber.attributes.city }}</code>" in html


def test_it_trusts_a_default_or_an_if_around_a_variable():
    refs = _references(
        "{{ subscriber.first_name | default('friend') }}"
        "{% if subscriber.attributes.city %}in {{ subscriber.attributes.city }}{% endif %}"
        "{{ subscriber.name }}{{ campaign.name }}{{ subscriber['attributes']['plan'] }}"
    )
    assert [expr for expr, _ in refs] == ["subscriber.name", "subscriber.attributes.plan"]
    assert _references("{{ broken") == []


def test_it_does_not_show_the_page_for_a_campaign_that_cannot_start(bob_client, draft):
    Campaign.objects.filter(pk=draft.pk).update(status=Campaign.Status.FINISHED)
    response = bob_client.get(url("campaign-start", campaign_id=draft.pk))
    assert response.status_code == 302


def test_it_refuses_the_page_to_a_role_that_cannot_send(carol_client, draft):
    assert carol_client.get(url("campaign-start", campaign_id=draft.pk)).status_code == 403
