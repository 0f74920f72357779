"""The unsubscribe link of every marketing message: RFC 8058 one-click POST and the page."""

from __future__ import annotations

import json
import string
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import ConsentRecord, Subscription, Suppression
from mailmarketer.audience.tokens import UNSUBSCRIBE_SALT, make_unsubscribe_token
from mailmarketer.campaigns.models import Campaign
from mailmarketer.lib.idtokens import _signature, make_token

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


def link(subscriber, campaign=None, workspace_id=None) -> str:
    token = make_unsubscribe_token(
        workspace_id or subscriber.workspace_id, subscriber.pk, campaign.pk if campaign else None
    )
    return f"/f/u/{token}"


def one_click(url: str, **extra):
    """What a mail client sends (RFC 8058 section 3.1): no cookie, no CSRF token."""
    client = Client(enforce_csrf_checks=True)
    return client.post(url, data=ONE_CLICK, content_type=FORM, **extra)


def statuses(subscriber) -> dict[str, str]:
    return dict(
        Subscription.objects.filter(subscriber_id=subscriber.pk).values_list(
            "mailing_list__slug", "status"
        )
    )


def snapshot() -> tuple:
    """Everything an unsubscribe could change."""
    return (
        sorted(Subscription.objects.values_list("pk", "status", "status_reason")),
        ConsentRecord.objects.count(),
        Suppression.objects.count(),
        AuditEvent.objects.count(),
    )


def withdrawals(subscriber):
    return ConsentRecord.objects.filter(
        subscriber_id=subscriber.pk, action=ConsentRecord.Action.WITHDRAW
    )


# -- one-click (RFC 8058) --------------------------------------------------------------------


def test_it_unsubscribes_with_a_bare_one_click_post(ann, campaign):
    response = one_click(link(ann, campaign), HTTP_USER_AGENT="ExampleMail/1.0")

    assert response.status_code == 200
    assert response.content == b"You are unsubscribed.\n"
    assert response["Content-Type"].startswith("text/plain")
    assert statuses(ann) == {"news": "unsubscribed", "offers": "confirmed"}
    news = Subscription.objects.get(subscriber=ann, mailing_list__slug="news")
    assert news.status_reason == Reason.BY_SUBSCRIBER and news.unsubscribed_at is not None
    (record,) = withdrawals(ann)
    assert record.purpose == "email:news"
    assert record.source_type == ConsentRecord.SourceType.SUBSCRIBER
    assert record.source_id == str(campaign.pk)
    assert record.source_label == "One-click unsubscribe"
    assert record.ip == "127.0.0.1"
    assert record.user_agent == "ExampleMail/1.0"


def test_it_sets_no_cookie_on_a_one_click_post(ann, campaign):
    response = one_click(link(ann, campaign))
    assert response.status_code == 200
    assert not response.cookies
    assert "Set-Cookie" not in response.headers


def test_it_names_the_person_in_the_audit_log_by_uuid_only(ann, campaign):
    one_click(link(ann, campaign))
    (row,) = AuditEvent.objects.filter(event="subscriber.unsubscribed")
    assert row.actor_label == "one-click unsubscribe"
    assert row.object_repr == f"subscriber {ann.uuid}"
    assert row.ip is None  # the audit log holds no personal data; the consent record has the IP
    assert "ann.example" not in json.dumps([row.object_repr, row.old, row.new, row.actor_label])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"List-Unsubscribe": "One-Click"}, None),  # multipart/form-data, as RFC 8058 suggests
        ("", FORM),
        ("", "text/plain"),
        ('{"anything": true}', "application/json"),
        ("--x\r\nnot really multipart", "multipart/form-data; boundary=x"),
    ],
    ids=["multipart", "empty-form", "empty-text", "json", "broken-multipart"],
)
def test_it_accepts_any_body_on_a_one_click_post(ann, campaign, body, content_type):
    client = Client(enforce_csrf_checks=True)
    url = link(ann, campaign)
    if content_type is None:
        response = client.post(url, data=body)
    else:
        response = client.post(url, data=body, content_type=content_type)
    assert response.status_code == 200
    assert response.content == b"You are unsubscribed.\n"
    assert statuses(ann)["news"] == "unsubscribed"


def test_it_unsubscribes_from_the_campaigns_lists_only(personas, staff, ann, offers, campaign):
    events = actions.do_create_list(personas.acme, name="Events", slug="events", actor=staff)
    actions.do_subscribe(ann, [events], actor=staff, reason=Reason.BY_ADMIN)
    campaign.lists.add(events)

    assert one_click(link(ann, campaign)).status_code == 200

    assert statuses(ann) == {
        "news": "unsubscribed",
        "events": "unsubscribed",
        "offers": "confirmed",
    }
    assert sorted(withdrawals(ann).values_list("purpose", flat=True)) == [
        "email:events",
        "email:news",
    ]
    assert not Suppression.objects.exists()


def test_it_unsubscribes_from_every_list_without_a_campaign(ann):
    assert one_click(link(ann)).status_code == 200
    assert statuses(ann) == {"news": "unsubscribed", "offers": "unsubscribed"}
    assert withdrawals(ann).count() == 2
    assert withdrawals(ann).first().source_id == ""
    assert not Suppression.objects.exists()  # one click ends memberships; it is not "never again"


def test_it_unsubscribes_from_every_list_when_the_campaign_is_gone(ann, campaign):
    url = link(ann, campaign)
    campaign.delete()
    assert one_click(url).status_code == 200
    assert statuses(ann) == {"news": "unsubscribed", "offers": "unsubscribed"}


def test_it_unsubscribes_from_every_list_when_the_campaign_names_none(personas, ann):
    # A campaign sent to a segment: the person got mail, so the link must stop it.
    campaign = Campaign.objects.create(workspace=personas.acme, name="Segment only", subject="Hi")
    assert one_click(link(ann, campaign)).status_code == 200
    assert statuses(ann) == {"news": "unsubscribed", "offers": "unsubscribed"}


def test_it_is_idempotent(ann, campaign):
    url = link(ann, campaign)
    assert one_click(url).status_code == 200
    before = snapshot()
    again = one_click(url)
    assert again.status_code == 200
    assert again.content == b"You are unsubscribed.\n"
    assert snapshot() == before  # no second withdrawal, no second audit row


def test_it_answers_200_for_a_person_erased_since(personas, staff, ann, campaign):
    url = link(ann, campaign)
    actions.do_erase_subscriber(ann, actor=staff)
    before = snapshot()

    response = one_click(url)

    assert response.status_code == 200
    assert response.content == b"You are unsubscribed.\n"  # the same answer: nothing revealed
    assert snapshot() == before
    page = Client().get(url)
    assert page.status_code == 200
    assert b"not on any of our lists" in page.content


def test_it_answers_200_for_a_person_deleted_since(staff, ann):
    url = link(ann)
    actions.do_delete_subscriber(ann, actor=staff)
    before = snapshot()
    assert one_click(url).content == b"You are unsubscribed.\n"
    assert snapshot() == before


def test_it_never_reaches_a_subscriber_of_another_workspace(personas, staff, ann):
    victim = actions.do_create_subscriber(personas.evil, email="vic@evil.test", actor=staff)
    evil_list = actions.do_create_list(personas.evil, name="Evil news", slug="news", actor=staff)
    actions.do_subscribe(victim, [evil_list], actor=staff, reason=Reason.BY_ADMIN)
    # A token that names acme but the id of evil's subscriber.
    url = link(victim, workspace_id=personas.acme.pk)
    before = snapshot()

    response = one_click(url)

    assert response.status_code == 200
    assert snapshot() == before
    assert statuses(victim) == {"news": "confirmed"}
    page = Client().get(url)
    assert b"vic@" not in page.content and b"Evil" not in page.content


def test_it_refuses_a_campaign_of_another_workspace(personas, ann):
    foreign = Campaign.objects.create(workspace=personas.evil, name="Theirs", subject="Hi")
    url = link(ann, foreign)
    before = snapshot()

    response = one_click(url)

    assert response.status_code == 400
    assert snapshot() == before
    assert Client().get(url).status_code == 400


# -- forged, altered and truncated tokens ----------------------------------------------------


def forged_tokens(subscriber) -> dict[str, str]:
    token = make_unsubscribe_token(subscriber.workspace_id, subscriber.pk, None)
    workspace_id, subscriber_id, campaign_id, signature = token.split(".")
    payload = f"{workspace_id}.{subscriber_id}.{campaign_id}"
    return {
        "altered": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "truncated": token[:-5],
        "no-signature": payload,
        "other-salt": make_token("other", subscriber.workspace_id, subscriber.pk, 0),
        "other-key": f"{payload}.{_signature(UNSUBSCRIBE_SALT, payload, 'not-our-key' * 4)}",
        # Someone else's ids under this token's signature.
        "other-payload": f"{workspace_id}.{subscriber.pk + 1}.{campaign_id}.{signature}",
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize(
    "kind",
    ["altered", "truncated", "no-signature", "other-salt", "other-key", "other-payload", "garbage"],
)
def test_it_changes_nothing_for_a_forged_token(ann, kind):
    forged = forged_tokens(ann)[kind]
    assert forged != make_unsubscribe_token(ann.workspace_id, ann.pk, None)
    url = f"/f/u/{forged}"
    before = snapshot()

    response = one_click(url)
    assert response.status_code == 400
    assert response.content == b"This unsubscribe link is not valid.\n"
    assert snapshot() == before

    page = Client().get(url)
    assert page.status_code == 400
    assert b"This unsubscribe link is not valid" in page.content
    assert "•••" not in page.content.decode()  # no address, not even masked

    form = Client().post(url, {"scope": "everything"})
    assert form.status_code == 400
    assert b"This unsubscribe link is not valid" in form.content
    assert snapshot() == before


ALPHABET = string.ascii_letters + string.digits + "-_:=.%+"


@st.composite
def mutations(draw, token: str) -> str:
    position = draw(st.integers(min_value=0, max_value=len(token) - 1))
    kind = draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
    if kind == "truncate":
        return token[:position]
    if kind == "delete":
        return token[:position] + token[position + 1 :]
    char = draw(st.sampled_from(ALPHABET))
    if kind == "insert":
        return token[:position] + char + token[position:]
    return token[:position] + char + token[position + 1 :]


def test_it_unsubscribes_nobody_with_a_mutated_token(ann, campaign):
    token = make_unsubscribe_token(ann.workspace_id, ann.pk, campaign.pk)
    before = snapshot()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(mutated=mutations(token))
    @example(mutated=token[:-1])
    @example(mutated=token.replace(":", "", 1))
    def check(mutated):
        # A mutation that puts back what was there is the real token, which does act (the test
        # below); every other one must change nothing.
        assume(mutated != token)
        response = one_click(f"/f/u/{mutated}")
        assert response.status_code in (400, 404), mutated
        assert snapshot() == before, mutated

    check()
    assert statuses(ann) == {"news": "confirmed", "offers": "confirmed"}


def test_it_works_with_the_unmutated_token(ann, campaign):
    # The counterpart of the property above: the same request with the token as made does act,
    # so the property is not passing merely because every request fails.
    token = make_unsubscribe_token(ann.workspace_id, ann.pk, campaign.pk)
    assert one_click(f"/f/u/{token}").status_code == 200
    assert statuses(ann)["news"] == "unsubscribed"


# -- tokens keep working ----------------------------------------------------------------------


def test_it_accepts_a_token_61_days_old(ann, campaign):
    sent_at = time.time() - timedelta(days=61).total_seconds()
    with mock.patch("time.time", return_value=sent_at):
        token = make_unsubscribe_token(ann.workspace_id, ann.pk, campaign.pk)
    # Nothing in a token depends on when it was made, so there is nothing that could expire.
    assert token == make_unsubscribe_token(ann.workspace_id, ann.pk, campaign.pk)

    assert Client().get(f"/f/u/{token}").status_code == 200
    assert one_click(f"/f/u/{token}").status_code == 200
    assert statuses(ann)["news"] == "unsubscribed"


# -- the page (GET) and its buttons ----------------------------------------------------------


def test_it_changes_nothing_on_get(ann, campaign):
    url = link(ann, campaign)
    before = snapshot()
    client = Client()
    for method in (client.get, client.head):
        assert method(url).status_code == 200
    assert snapshot() == before
    assert statuses(ann) == {"news": "confirmed", "offers": "confirmed"}


def test_it_shows_the_masked_address_and_the_lists(ann, campaign):
    response = Client().get(link(ann, campaign))
    html = response.content.decode()
    assert response.status_code == 200
    assert "a•••@example.com" in html
    assert "ann.example@example.com" not in html
    assert "<li>News</li>" in html
    assert "Offers" not in html  # not the campaign's list: this link does not end it
    assert "do-not-mail list" in html  # what "everything" means, said before it is pressed
    assert html.count('method="post"') == 2
    assert 'name="scope" value="lists"' in html
    assert 'name="scope" value="everything"' in html
    assert "Acme" in html  # whose lists these are


def test_it_shows_every_list_for_a_link_without_a_campaign(ann):
    html = Client().get(link(ann)).content.decode()
    assert "<li>News</li>" in html and "<li>Offers</li>" in html


def test_it_says_so_when_already_unsubscribed(ann, campaign):
    url = link(ann, campaign)
    one_click(url)
    html = Client().get(url).content.decode()
    assert "already unsubscribed from News" in html
    assert 'value="lists"' not in html  # nothing left for that button to do
    assert 'value="everything"' in html


def test_it_serves_a_public_page_without_scripts_styles_or_staff_links(ann, campaign):
    response = Client().get(link(ann, campaign))
    html = response.content.decode()
    assert "<script" not in html
    assert "<style" not in html and "style=" not in html
    assert "/app/" not in html and "Sign out" not in html and "<nav" not in html
    assert "csrfmiddlewaretoken" not in html
    assert "/static/signup/public.css" in html
    assert not response.cookies
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("case", ["get", "one-click", "form", "invalid-get", "invalid-post"])
def test_it_keeps_the_token_out_of_referrers_indexes_and_caches(ann, campaign, case):
    url = link(ann, campaign) if not case.startswith("invalid") else "/f/u/forged"
    if case in ("get", "invalid-get"):
        response = Client().get(url)
    elif case == "form":
        response = Client().post(url, {"scope": "lists"})
    else:
        response = one_click(url)
    assert response["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response["X-Robots-Tag"]
    assert "no-store" in response["Cache-Control"]


def test_it_confirms_a_press_of_the_page_button(ann, campaign):
    client = Client(enforce_csrf_checks=True)  # the page's form carries no CSRF token either
    response = client.post(link(ann, campaign), {"scope": "lists"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "You're unsubscribed" in html
    assert "<li>News</li>" in html
    assert "a•••@example.com" in html
    assert statuses(ann) == {"news": "unsubscribed", "offers": "confirmed"}
    (record,) = withdrawals(ann)
    assert record.source_label == "Unsubscribe page"
    assert not Suppression.objects.exists()
    assert 'value="everything"' in html  # the next step is still offered
    assert not response.cookies


def test_it_unsubscribes_from_everything_and_suppresses_the_address(ann, campaign):
    response = Client().post(link(ann, campaign), {"scope": "everything"})

    assert response.status_code == 200
    assert "do-not-mail list" in response.content.decode()
    assert statuses(ann) == {"news": "unsubscribed", "offers": "unsubscribed"}
    (suppression,) = Suppression.objects.all()
    assert suppression.reason == Suppression.Reason.UNSUBSCRIBED_ALL
    assert suppression.workspace_id == ann.workspace_id
    assert actions.suppression_for(ann.workspace, ann.email) == suppression
    with pytest.raises(actions.Suppressed):  # nothing can put the address back on a list
        actions.do_subscribe(
            ann, [campaign.lists.get()], actor=Actor.system(), reason=Reason.BY_ADMIN
        )


def test_it_records_everything_once(ann, campaign):
    url = link(ann, campaign)
    Client().post(url, {"scope": "everything"})
    before = snapshot()
    again = Client().post(url, {"scope": "everything"})
    assert again.status_code == 200
    assert snapshot() == before
    assert 'value="everything"' not in again.content.decode()


def test_it_refuses_a_choice_the_page_does_not_offer(ann, campaign):
    url = link(ann, campaign)
    before = snapshot()
    response = Client().post(url, {"scope": "someone-else"})
    assert response.status_code == 400
    assert "a choice this page does not offer" in response.content.decode()
    assert snapshot() == before


def test_it_refuses_other_methods(ann):
    client = Client()
    url = link(ann)
    assert client.put(url).status_code == 405
    assert client.delete(url).status_code == 405
    assert statuses(ann) == {"news": "confirmed", "offers": "confirmed"}
