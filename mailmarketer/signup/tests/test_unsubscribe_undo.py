"""“I did this by mistake” after unsubscribing: a POST with CSRF, the same token, within seven
days, renewing only what the person ended through the link, with a new consent grant."""

from __future__ import annotations

import re
from datetime import timedelta

from django.test import Client
from django.utils.timezone import now

from mailmarketer.audience.models import ConsentRecord, Subscription
from mailmarketer.audience.tokens import make_unsubscribe_token
from mailmarketer.signup.views_undo import UNDO_LABEL, form_token


def link(subscriber, campaign) -> str:
    return f"/f/u/{make_unsubscribe_token(subscriber.workspace_id, subscriber.pk, campaign.pk)}"


def statuses(subscriber) -> dict[str, str]:
    return dict(
        Subscription.objects.filter(subscriber_id=subscriber.pk).values_list(
            "mailing_list__slug", "status"
        )
    )


def unsubscribed_page(client, url) -> str:
    client.get(url)
    response = client.post(url, {"scope": "lists"})
    assert response.status_code == 200
    return response.content.decode()


def confirm_value(html: str) -> str:
    return re.search(r'name="confirm" value="([^"]+)"', html).group(1)


def test_it_offers_and_undoes_an_unsubscribe_made_by_mistake(ann, campaign):
    client = Client(enforce_csrf_checks=True)
    url = link(ann, campaign)
    html = unsubscribed_page(client, url)
    assert "I did this by mistake" in html
    assert f'action="{url}/undo"' in html
    assert statuses(ann) == {"news": "unsubscribed", "offers": "confirmed"}
    assert not client.cookies  # the pages still set no cookie

    response = client.post(f"{url}/undo", {"confirm": confirm_value(html)})

    assert response.status_code == 200
    assert "subscribed again" in response.content.decode()
    assert statuses(ann) == {"news": "confirmed", "offers": "confirmed"}
    grant = ConsentRecord.objects.filter(subscriber=ann).latest("pk")
    assert (grant.action, grant.purpose, grant.source_type, grant.source_label) == (
        ConsentRecord.Action.GRANT,
        "email:news",
        ConsentRecord.SourceType.SUBSCRIBER,
        UNDO_LABEL,
    )


def test_it_refuses_an_undo_without_the_pages_token(ann, campaign, offers):
    url = link(ann, campaign)
    unsubscribed_page(Client(), url)
    other = link(ann, campaign).replace("/f/u/", "")  # a fresh token, not the page's
    for data in ({}, {"confirm": "forged"}, {"confirm": other}):
        response = Client().post(f"{url}/undo", data)
        assert response.status_code == 403
    assert statuses(ann)["news"] == "unsubscribed"


def test_it_undoes_nothing_after_seven_days(ann, campaign):
    url = link(ann, campaign)
    unsubscribed_page(Client(), url)
    Subscription.objects.filter(subscriber=ann, mailing_list__slug="news").update(
        unsubscribed_at=now() - timedelta(days=8)
    )
    response = Client().post(f"{url}/undo", {"confirm": form_token(url[5:])})
    assert response.status_code == 409
    assert "older than 7 days" in response.content.decode()
    assert statuses(ann)["news"] == "unsubscribed"


def test_it_never_renews_what_someone_else_ended(ann, campaign, staff):
    from mailmarketer.audience import actions

    actions.do_unsubscribe(ann, None, actor=staff, reason="by_admin")
    url = link(ann, campaign)
    response = Client().post(f"{url}/undo", {"confirm": form_token(url[5:])})
    assert response.status_code == 409
    assert statuses(ann) == {"news": "unsubscribed", "offers": "unsubscribed"}


def test_it_does_not_offer_undo_after_unsubscribing_from_everything(ann, campaign):
    url = link(ann, campaign)
    html = Client().post(url, {"scope": "everything"}).content.decode()
    assert "I did this by mistake" not in html
    response = Client().post(f"{url}/undo", {"confirm": form_token(url[5:])})
    assert response.status_code == 409
    assert "do-not-mail list" in response.content.decode()
    assert not re.search(r"confirmed", str(statuses(ann)))


def test_it_refuses_a_forged_token():
    response = Client().post("/f/u/not-a-token/undo")
    assert response.status_code == 400
