"""Submitting a form (hosted page, embed, JSON) and confirming by mail: what is stored, what
is mailed, and what is refused with nothing stored."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import (
    ConsentNotice,
    ConsentRecord,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery.models import Delivery
from mailmarketer.signup import limits, spooled
from mailmarketer.signup.models import Confirmation, Submission
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import EMBED, make_form_token
from mailmarketer.testing import FORM_NOTICE as NOTICE
from mailmarketer.testing import launch

from .support import GOOD, confirm_path, form_url, notice_shown, post, run_engine, sent_messages

pytestmark = pytest.mark.django_db


def statuses(subscriber) -> dict[str, str]:
    return dict(
        Subscription.objects.filter(subscriber=subscriber).values_list(
            "mailing_list__slug", "status"
        )
    )


def ann(workspace) -> Subscriber:
    return Subscriber.objects.get(workspace=workspace, email="ann@example.com")


def confirm(workspace, index: int = -1):
    run_engine()
    path = confirm_path(sent_messages(workspace)[index])
    return Client(enforce_csrf_checks=True).post(path)


# -- a first sign-up -------------------------------------------------------------------------


def test_it_stores_the_subscriber_memberships_consent_source_and_audit_in_one_go(
    newsletter, personas
):
    data = {
        **GOOD,
        "employees": "12",
        "founded": "2001-02-03",
        "topic": "Tea",
        "vip": "on",
        "page_url": "https://www.acme.test/join",
    }
    response = post(
        newsletter, data, HTTP_USER_AGENT="Firefox/128", HTTP_REFERER="https://search.test/"
    )
    assert response.status_code == 200
    assert "check your inbox" in response.content.decode()
    person = ann(personas.acme)
    assert person.source == "form"
    assert person.attributes == {
        "first_name": "Ann",
        "company": "Beans Ltd",
        "employees": 12,
        "founded": "2001-02-03",
        "topic": "Tea",
        "vip": True,
    }
    # News is single opt-in: subscribed; Weekly is double: waiting for the mail.
    assert statuses(person) == {"news": "confirmed", "weekly": "unconfirmed"}
    records = list(ConsentRecord.objects.filter(subscriber=person).order_by("purpose"))
    assert [(r.purpose, r.action, r.notice_id) for r in records] == [
        ("email:news", "grant", newsletter.notice_id),
        ("email:weekly", "grant", newsletter.notice_id),
    ]
    assert {(r.source_type, r.source_id, r.ip, r.user_agent) for r in records} == {
        ("form", str(newsletter.pk), "127.0.0.1", "Firefox/128")
    }
    (submission,) = Submission.objects.all()
    assert (submission.subscriber, submission.page_url, submission.referrer, submission.via) == (
        person,
        "https://www.acme.test/join",
        "https://search.test/",
        "page",
    )
    assert AuditEvent.objects.filter(event="form.submitted", object_id=str(newsletter.pk)).exists()


def test_it_keeps_no_ip_or_user_agent_when_the_workspace_says_so(newsletter, personas):
    personas.acme.consent_store_ip = False
    personas.acme.save()
    post(newsletter, HTTP_USER_AGENT="Firefox/128")
    assert set(ConsentRecord.objects.values_list("ip", "user_agent")) == {(None, "")}
    assert list(Submission.objects.values_list("ip", "user_agent")) == [(None, "")]


def test_it_stores_the_words_the_page_showed_with_the_consent(newsletter, personas):
    shown = notice_shown(Client().get(form_url(newsletter)))
    post(newsletter)
    notices = ConsentNotice.objects.filter(
        pk__in=ConsentRecord.objects.values("notice_id")
    ).distinct()
    (notice,) = notices
    assert shown == notice.text == NOTICE
    assert notice.sha256 == ConsentNotice.hash_text(shown)


def test_it_answers_the_same_for_a_known_address_and_never_duplicates_it(newsletter, personas):
    first = post(newsletter)
    again = post(newsletter, {**GOOD, "email": "  ann@EXAMPLE.com", "first_name": "Mallory"})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert Subscriber.objects.filter(workspace=personas.acme).count() == 1
    # A stranger typing the address cannot rename its owner.
    assert ann(personas.acme).attributes["first_name"] == "Ann"


# -- double opt-in ---------------------------------------------------------------------------


def test_it_mails_a_confirmation_link_whose_get_changes_nothing_and_whose_post_confirms(
    newsletter, personas
):
    post(newsletter)
    run_engine()
    (message,) = sent_messages(personas.acme)
    assert message["To"].addresses[0].addr_spec == "ann@example.com"
    # Through the engine: a transactional campaign with its ledger row, sent.
    (delivery,) = Delivery.objects.filter(campaign__kind=Campaign.Kind.TRANSACTIONAL)
    assert delivery.status == "sent"
    path = confirm_path(message)
    page = Client().get(path)
    assert page.status_code == 200 and b"<button" in page.content
    assert statuses(ann(personas.acme))["weekly"] == "unconfirmed"

    done = Client(enforce_csrf_checks=True).post(path)
    assert done.status_code == 200
    person = ann(personas.acme)
    assert statuses(person) == {"news": "confirmed", "weekly": "confirmed"}
    confirm_record = ConsentRecord.objects.get(subscriber=person, action="confirm")
    assert (confirm_record.purpose, confirm_record.source_type) == ("email:weekly", "subscriber")
    assert confirm_record.confirmed_at is not None
    # Pressing it again confirms nothing more.
    Client().post(path)
    assert ConsentRecord.objects.filter(action="confirm").count() == 1


def test_it_echoes_nothing_the_submitter_typed_but_the_address(newsletter, personas):
    spam = "Visit http://spam.test now"
    post(newsletter, {**GOOD, "first_name": spam, "company": spam})
    run_engine()
    (message,) = sent_messages(personas.acme)
    assert "spam.test" not in message.as_string()
    assert "ann@example.com" in message.get_body(("plain",)).get_content()


def test_it_keeps_a_typed_name_out_of_the_confirmation_mail_until_confirmed(newsletter, personas):
    post(newsletter, {**GOOD, "first_name": "Buy cheap pills"})
    person = ann(personas.acme)
    assert person.name == ""
    run_engine()
    (message,) = sent_messages(personas.acme)
    assert str(message["To"]) == "ann@example.com"
    Client().post(confirm_path(message))
    person.refresh_from_db()
    assert person.name == "Buy cheap pills"


def test_it_names_a_single_opt_in_subscriber_at_once(newsletter, personas, staff, news):
    from mailmarketer.signup.actions import do_update_form

    do_update_form(newsletter, {}, lists=[news], actor=staff)
    post(newsletter)
    assert ann(personas.acme).name == "Ann"


def test_it_never_runs_an_address_as_a_template(newsletter, personas):
    post(newsletter, {**GOOD, "email": "{{7*7}}@example.com"})
    run_engine()
    (message,) = sent_messages(personas.acme)
    body = message.get_body(("plain",)).get_content()
    assert "{{7*7}}@example.com" in body and "49@example.com" not in body


def test_it_refuses_forged_altered_and_expired_confirmation_links(newsletter, personas):
    post(newsletter)
    run_engine()
    path = confirm_path(sent_messages(personas.acme)[0])
    client = Client(enforce_csrf_checks=True)
    for bad in (path[:-1] + ("A" if path[-1] != "A" else "B"), "/f/c/1:abc:def", "/f/c/x"):
        assert client.post(bad).status_code == 400
    with mock.patch("time.time", return_value=time.time() + timedelta(days=8).total_seconds()):
        assert client.post(path).status_code == 400
        assert client.get(path).status_code == 400
    assert statuses(ann(personas.acme))["weekly"] == "unconfirmed"
    assert not ConsentRecord.objects.filter(action="confirm").exists()


def test_it_sends_one_confirmation_mail_a_day_and_later_signups_join_it(
    newsletter, personas, staff
):
    from mailmarketer.signup.actions import do_create_form

    monthly = audience.do_create_list(
        personas.acme, name="Monthly", slug="monthly", optin="double", actor=staff
    )
    other = do_create_form(
        personas.acme,
        name="Other",
        slug="other",
        title="Other",
        lists=[monthly],
        notice_text="Monthly news, please.",
        actor=staff,
    )
    post(newsletter)
    post(other, {"email": "ann@example.com", "consent": "1"})
    run_engine()
    assert len(sent_messages(personas.acme)) == 1
    assert Confirmation.objects.count() == 1
    confirm(personas.acme)
    assert statuses(ann(personas.acme)) == {
        "news": "confirmed",
        "weekly": "confirmed",
        "monthly": "confirmed",
    }


def test_it_sends_at_most_three_confirmation_mails_in_thirty_days(newsletter, personas):
    for day in range(5):
        post(newsletter)
        # The earlier mails were sent days ago (the 24-hour gap is over).
        Confirmation.objects.update(created_at=now() - timedelta(days=day + 2))
        Submission.objects.update(created_at=now() - timedelta(days=day + 2))
    run_engine()
    assert len(sent_messages(personas.acme)) == limits.MAILS_PER_MONTH


# -- people who left -------------------------------------------------------------------------


def test_it_renews_a_membership_the_person_left_only_when_they_confirm(
    newsletter, personas, news, staff
):
    post(newsletter)
    confirm(personas.acme)
    person = ann(personas.acme)
    audience.do_unsubscribe(person, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    Confirmation.objects.update(created_at=now() - timedelta(days=2))  # the day's mail is over

    post(newsletter)
    # Single opt-in or not, the list they left stays left until they confirm.
    assert statuses(person)["news"] == "unsubscribed"
    confirm(personas.acme)
    assert statuses(person)["news"] == "confirmed"
    last = ConsentRecord.objects.filter(subscriber=person, purpose="email:news").last()
    assert last.action == "confirm"


def test_it_lifts_the_persons_own_stop_everything_only_by_confirming(newsletter, personas, staff):
    post(newsletter)
    person = ann(personas.acme)
    audience.do_unsubscribe(person, actor=staff, reason=Reason.BY_SUBSCRIBER, suppress_all=True)
    Confirmation.objects.update(created_at=now() - timedelta(days=2))

    post(newsletter)
    assert set(statuses(person).values()) == {"unsubscribed"}
    assert Suppression.objects.filter(email_hash=Submission.objects.last().email_hash).exists()
    confirm(personas.acme)
    assert statuses(person) == {"news": "confirmed", "weekly": "confirmed"}
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("reason", ["hard_bounce", "complaint", "manual"])
def test_it_subscribes_and_mails_nobody_suppressed_for_other_reasons(
    newsletter, personas, staff, reason
):
    audience.do_add_suppression(personas.acme, email="ann@example.com", reason=reason, actor=staff)
    fresh = post(newsletter, {**GOOD, "email": "new@example.com"})
    response = post(newsletter)
    assert response.content == fresh.content
    assert not Subscriber.objects.filter(email="ann@example.com").exists()
    assert Submission.objects.get(subscriber=None).outcome == "refused"
    run_engine()
    assert [m["To"].addresses[0].addr_spec for m in sent_messages(personas.acme)] == [
        "new@example.com"
    ]


def test_it_cannot_bring_back_an_erased_person_without_them(newsletter, personas, staff):
    post(newsletter)
    audience.do_erase_subscriber(ann(personas.acme), actor=staff)
    Confirmation.objects.all().delete()  # gone with the person already; make sure
    response = post(newsletter)
    assert response.status_code == 200
    # A record to send the confirmation to, on no list, with no consent, still suppressed.
    person = ann(personas.acme)
    assert statuses(person) == {}
    assert not ConsentRecord.objects.exists()
    assert Suppression.objects.get().reason == "erased"
    assert Submission.objects.last().outcome == "confirming"
    # A campaign meanwhile does not reach them.
    campaign = launch(personas.acme, list(newsletter.lists.all()))
    run_engine()
    assert not Delivery.objects.filter(campaign=campaign, subscriber=person, status="sent").exists()
    (message,) = [m for m in sent_messages(personas.acme) if "confirm" in m["Subject"].lower()]
    assert message["To"].addresses[0].addr_spec == "ann@example.com"


def test_it_brings_back_an_erased_person_who_confirms(newsletter, personas, staff):
    post(newsletter)
    audience.do_erase_subscriber(ann(personas.acme), actor=staff)
    post(newsletter)
    response = confirm(personas.acme)
    assert response.status_code == 200
    person = ann(personas.acme)
    assert statuses(person) == {"news": "confirmed", "weekly": "confirmed"}
    assert not Suppression.objects.exists()
    actions = list(
        ConsentRecord.objects.filter(subscriber=person)
        .order_by("pk")
        .values_list("mailing_list__slug", "action")
    )
    assert ("news", "grant") in actions and ("weekly", "confirm") in actions
    assert AuditEvent.objects.filter(
        event="suppression.removed", new__by="the person's confirmed sign-up"
    ).exists()


def test_it_sends_an_erased_address_only_its_confirmation(newsletter, personas, staff):
    from mailmarketer.delivery.transactional import do_send_transactional

    post(newsletter)
    audience.do_erase_subscriber(ann(personas.acme), actor=staff)
    post(newsletter)
    person = ann(personas.acme)
    # Any other transactional message (a receipt through the API) is still refused.
    with pytest.raises(Exception, match="suppressed"):
        do_send_transactional(personas.acme, person, actor=staff, subject="Receipt", body="Thanks")
    run_engine()
    assert [m["Subject"] for m in sent_messages(personas.acme)][-1:] == [
        "Please confirm your subscription"
    ]


def test_it_erases_again_an_erased_address_nobody_confirmed(newsletter, personas, staff):
    from mailmarketer.audience.actions import expire_reconsent_one
    from mailmarketer.audience.models import Reconsent

    post(newsletter)
    audience.do_erase_subscriber(ann(personas.acme), actor=staff)
    post(newsletter)
    assert not expire_reconsent_one()  # the link is still valid: nothing to do
    Reconsent.objects.update(created_at=now() - timedelta(days=8, minutes=1))
    assert expire_reconsent_one()
    assert not Subscriber.objects.filter(email="ann@example.com").exists()
    assert Suppression.objects.get().reason == "erased"
    assert not expire_reconsent_one()


def test_it_keeps_a_bounced_address_out_of_forms(newsletter, personas, staff):
    audience.do_add_suppression(
        personas.acme, email="ann@example.com", reason="hard_bounce", actor=staff
    )
    post(newsletter)
    assert not Subscriber.objects.filter(email="ann@example.com").exists()
    assert Submission.objects.get().outcome == "refused"
    run_engine()
    assert sent_messages(personas.acme) == []


# -- refused, nothing stored -----------------------------------------------------------------


def nothing_stored():
    return (
        not Subscriber.objects.exists()
        and not Submission.objects.exists()
        and not ConsentRecord.objects.exists()
        and not Confirmation.objects.exists()
    )


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"email": "not-an-address"}, "email", 422),
        ({"email": ""}, "email", 422),
        ({"email": "a" * 250 + "@example.com"}, "email", 422),
        ({"consent": ""}, "consent", 422),
        ({"company": ""}, "company", 422),
        ({"company": "x" * 201}, "company", 422),
        ({"employees": "many"}, "employees", 422),
        ({"founded": "31/12/2000"}, "founded", 422),
        ({"topic": "Beer"}, "topic", 422),
        ({"is_admin": "1"}, "is_admin", 422),
    ],
)
def test_it_names_the_field_it_refuses_and_stores_nothing(newsletter, change, field, status):
    data = {k: v for k, v in {**GOOD, **change}.items() if v != "" or k == "email"}
    response = post(newsletter, data)
    assert response.status_code == status
    assert 'class="errorlist"' in response.content.decode()
    assert nothing_stored()
    json_response = post_json(newsletter, data)
    assert json_response.status_code == status
    assert field in {e["field"] for e in json_response.json()["errors"]}
    assert nothing_stored()


def test_it_blocks_a_filled_honeypot_and_stores_nothing(newsletter):
    response = post(newsletter, {**GOOD, "website": "http://bot.test"})
    assert response.status_code == 400
    assert "could not accept" in response.content.decode()
    assert nothing_stored()


@pytest.mark.parametrize("token", ["", "garbage", "1.page:abc:def"])
def test_it_refuses_a_missing_or_forged_form_token(newsletter, token):
    response = post(newsletter, token=token)
    assert response.status_code == 422
    assert "expired" in response.content.decode()
    assert nothing_stored()


def test_it_refuses_another_forms_token_and_an_expired_one(newsletter, personas, staff, news):
    from mailmarketer.signup.actions import do_create_form

    other = do_create_form(
        personas.acme, name="O", slug="o", title="O", lists=[news], notice_text="Yes.", actor=staff
    )
    assert post(newsletter, token=make_form_token(other.pk)).status_code == 422
    with mock.patch("time.time", return_value=time.time() - timedelta(hours=25).total_seconds()):
        old = make_form_token(newsletter.pk)
    response = post(newsletter, token=old)
    assert response.status_code == 422
    # The page comes back with what was typed and a fresh token, so sending again works.
    assert 'value="Beans Ltd"' in response.content.decode()
    assert not Submission.objects.exists()


def test_it_accepts_the_embed_token_from_an_allowed_origin_only(newsletter):
    token = make_form_token(newsletter.pk, EMBED)
    refused = post(newsletter, token=token, HTTP_ORIGIN="https://evil.test")
    assert refused.status_code == 403
    assert not Submission.objects.exists()
    assert post(newsletter, token=token, HTTP_ORIGIN="http://127.0.0.1:9999").status_code == 200
    assert Submission.objects.get().via == "embed"


def test_it_refuses_an_oversized_body(newsletter):
    response = post(newsletter, {**GOOD, "company": "x" * 40_000})
    assert response.status_code == 413
    assert nothing_stored()


def test_it_limits_submissions_per_address_and_per_ip(newsletter, monkeypatch):
    monkeypatch.setattr(limits, "PER_ADDRESS", 2)
    monkeypatch.setattr(limits, "PER_IP", 3)
    assert post(newsletter).status_code == 200
    assert post(newsletter).status_code == 200
    third = post(newsletter)
    assert third.status_code == 429
    assert "Too many" in third.content.decode()
    assert Submission.objects.count() == 2
    assert post(newsletter, {**GOOD, "email": "bo@example.com"}).status_code == 200
    assert post(newsletter, {**GOOD, "email": "cy@example.com"}).status_code == 429
    # Another IP is not held back by this one.
    other = post(newsletter, {**GOOD, "email": "cy@example.com"}, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 200
    assert Submission.objects.count() == 4


def test_it_redirects_to_the_forms_own_site_after_a_post(newsletter, staff):
    from mailmarketer.signup.actions import do_update_form

    do_update_form(newsletter, {"redirect_url": "http://127.0.0.1:9999/thanks"}, actor=staff)
    response = post(newsletter)
    assert (response.status_code, response["Location"]) == (303, "http://127.0.0.1:9999/thanks")
    assert "http://127.0.0.1:9999" in Client().get(form_url(newsletter))["Content-Security-Policy"]


def test_it_shows_the_built_in_words_in_german(newsletter, staff):
    from mailmarketer.signup.actions import do_update_form

    do_update_form(newsletter, {"language": "de"}, actor=staff)
    page = Client().get(form_url(newsletter)).content.decode()
    assert 'lang="de"' in page and "E-Mail-Adresse" in page and "Anmelden" in page
    assert "Vielen Dank" in post(newsletter).content.decode()


def test_it_has_no_page_for_an_unknown_form_or_workspace(newsletter):
    assert Client().get("/f/acme/nope").status_code == 404
    assert Client().get("/f/evil/newsletter").status_code == 404


# -- JSON ------------------------------------------------------------------------------------


def post_json(form, data=None, *, origin="http://127.0.0.1:9999", token=None, raw=None):
    body = {
        "form_token": token or make_form_token(form.pk, EMBED),
        "altcha": altcha_payload(form),
        **(GOOD if data is None else data),
    }
    response = Client(enforce_csrf_checks=True).post(
        form_url(form) + ".json",
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        HTTP_ORIGIN=origin,
    )
    spooled.ingest_all()  # a newsletter sign-up is stored by the worker (signup/spooled.py)
    return response


def test_it_takes_json_from_an_allowed_origin_with_cors(newsletter, personas):
    response = post_json(newsletter, {**GOOD, "vip": True, "employees": 7})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "http://127.0.0.1:9999"
    assert response.json()["status"] == "ok"
    assert ann(personas.acme).attributes["employees"] == 7
    assert Submission.objects.get().via == "json"


def test_it_answers_the_preflight_for_allowed_origins_only(newsletter):
    client = Client()
    url = form_url(newsletter) + ".json"
    allowed = client.options(url, HTTP_ORIGIN="http://127.0.0.1:9999")
    assert allowed["Access-Control-Allow-Origin"] == "http://127.0.0.1:9999"
    assert "Content-Type" in allowed["Access-Control-Allow-Headers"]
    other = client.options(url, HTTP_ORIGIN="https://evil.test")
    assert "Access-Control-Allow-Origin" not in other


def test_it_refuses_json_from_another_origin_and_bad_bodies(newsletter):
    response = post_json(newsletter, origin="https://evil.test")
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    assert post_json(newsletter, raw="{not json").status_code == 400
    assert post_json(newsletter, raw="[1, 2]").status_code == 400
    assert post_json(newsletter, raw=json.dumps({"x": "y" * 40_000})).status_code == 413
    bad_token = post_json(newsletter, token="forged")
    assert bad_token.status_code == 422
    assert bad_token.json()["errors"][0]["field"] == "form_token"
    nested = post_json(newsletter, {**GOOD, "company": {"a": 1}})
    assert nested.status_code == 422
    assert nothing_stored()


def test_it_keeps_the_sign_up_when_the_workspace_cannot_send(newsletter, personas):
    personas.acme.sender_email = ""
    personas.acme.save()
    response = post(newsletter)
    assert response.status_code == 200
    assert statuses(ann(personas.acme)) == {"news": "confirmed", "weekly": "unconfirmed"}
    assert not Confirmation.objects.exists()
    assert not Campaign.objects.exists()


def test_it_exports_a_persons_submissions_and_blanks_them_on_erasure(newsletter, personas, staff):
    post(
        newsletter,
        {**GOOD, "page_url": "https://www.acme.test/join"},
        HTTP_USER_AGENT="Firefox/128",
        HTTP_REFERER="https://search.test/?q=ann",
    )
    person = ann(personas.acme)
    document = audience.do_export_personal_data(person, actor=staff)
    (row,) = document["form_submissions"]
    assert (row["form__name"], row["page_url"], row["ip"]) == (
        "Newsletter",
        "https://www.acme.test/join",
        "127.0.0.1",
    )
    assert [c["status"] for c in document["confirmations"]] == ["pending"]

    audience.do_erase_subscriber(person, actor=staff)
    # The row stays for the form's counts, with nothing left that could name the person.
    assert list(
        Submission.objects.values_list("subscriber", "ip", "user_agent", "page_url", "referrer")
    ) == [(None, None, "", "", "")]
    assert not Confirmation.objects.exists()
