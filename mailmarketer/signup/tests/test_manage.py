"""The preference centre behind every message's "Manage your subscription" link, and the
data-download and erasure links it mails (docs/unsubscribe.md)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.emails import suppression_hash
from mailmarketer.audience.links import manage_url
from mailmarketer.audience.models import (
    ConsentNotice,
    ConsentRecord,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.audience.tokens import make_manage_token, make_unsubscribe_token
from mailmarketer.signup.tokens import ERASE, make_self_service_token

from .support import run_engine, sent_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def public(news, offers, staff):
    for mailing_list in (news, offers):
        actions.do_update_list(mailing_list, {"visibility": "public"}, actor=staff)
        mailing_list.refresh_from_db()
    return news, offers


def page_of(subscriber) -> str:
    return f"/f/m/{make_manage_token(subscriber.workspace_id, subscriber.pk)}"


def browser(url: str) -> tuple[Client, str]:
    """A client that opened the page (so it holds the CSRF cookie) and the page's CSRF token."""
    client = Client(enforce_csrf_checks=True)
    response = client.get(url)
    assert response.status_code == 200, response.content
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    return client, token.group(1)


def press(url: str, **data):
    client, csrf = browser(url)
    return client.post(url, {"csrfmiddlewaretoken": csrf, **data})


def statuses(subscriber) -> dict[str, str]:
    return dict(
        Subscription.objects.filter(subscriber_id=subscriber.pk).values_list(
            "mailing_list__slug", "status"
        )
    )


def link_in(message, path: str) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(rf"https?://[^/\s]+({re.escape(path)}\S+)", body)
    assert match, body
    return match.group(1)


def test_it_makes_a_manage_url_apart_from_the_unsubscribe_link(ann):
    url = manage_url(ann.workspace_id, ann.pk)
    assert "/f/m/" in url
    assert make_unsubscribe_token(ann.workspace_id, ann.pk, None) not in url
    # An unsubscribe token is not a manage token.
    assert (
        Client().get(f"/f/m/{make_unsubscribe_token(ann.workspace_id, ann.pk, None)}").status_code
        == 400
    )


def test_it_shows_the_public_lists_ticked_where_the_person_is_on_them(ann, public, news):
    response = Client().get(page_of(ann))
    body = response.content.decode()
    assert response.status_code == 200
    assert "a•••@example.com" in body
    assert body.count('name="lists"') == 2
    assert body.count("checked") == 2
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "no-store" in response.headers["Cache-Control"]


def test_it_changes_nothing_on_get(ann, public):
    before = (ConsentRecord.objects.count(), AuditEvent.objects.count(), statuses(ann))
    for path in (
        page_of(ann),
        f"/f/m/erase/{make_self_service_token(ERASE, ann.workspace_id, ann.pk)}",
    ):
        Client().get(path)
        Client().head(path)
    assert (ConsentRecord.objects.count(), AuditEvent.objects.count(), statuses(ann)) == before
    assert Subscriber.objects.filter(pk=ann.pk).exists()


def test_it_refuses_a_post_without_a_csrf_token(ann, public):
    response = Client(enforce_csrf_checks=True).post(page_of(ann), {"action": "everything"})
    assert response.status_code == 403
    assert statuses(ann) == {"news": "confirmed", "offers": "confirmed"}


def test_it_leaves_and_joins_public_lists_with_consent_records_and_audit_rows(
    ann, public, news, offers
):
    response = press(page_of(ann), action="save", lists=[str(news.pk)], name="Ann Example")
    assert response.status_code == 200, response.content
    assert "Your choices are saved" in response.content.decode()
    assert statuses(ann) == {"news": "confirmed", "offers": "unsubscribed"}
    withdrawal = ConsentRecord.objects.filter(subscriber=ann, mailing_list=offers).last()
    assert (withdrawal.action, withdrawal.source_type) == ("withdraw", "subscriber")
    ann.refresh_from_db()
    assert ann.name == "Ann Example"

    response = press(
        page_of(ann), action="save", lists=[str(news.pk), str(offers.pk)], name="Ann Example"
    )
    assert statuses(ann) == {"news": "confirmed", "offers": "confirmed"}
    grant = ConsentRecord.objects.filter(subscriber=ann, mailing_list=offers).last()
    assert (grant.action, grant.source_type) == ("grant", "subscriber")
    assert grant.confirmed_at is not None
    # The words next to the boxes are the notice the record names.
    assert grant.notice.text in response.content.decode()
    assert grant.notice.sha256 == ConsentNotice.hash_text(grant.notice.text)
    events = list(
        AuditEvent.objects.filter(event="preferences.updated")
        .order_by("pk")
        .values_list("new", flat=True)
    )
    assert events == [
        {"joined": [], "left": ["offers"], "name": True},
        {"joined": ["offers"], "left": [], "name": False},
    ]


def test_it_refuses_a_list_that_is_not_public_and_stores_nothing(ann, public, staff, personas):
    private = actions.do_create_list(personas.acme, name="Staff", slug="staff", actor=staff)
    before = (ConsentRecord.objects.count(), statuses(ann))
    response = press(page_of(ann), action="save", lists=[str(private.pk)], name="")
    assert response.status_code == 422
    assert "Choose among the lists shown" in response.content.decode()
    assert (ConsentRecord.objects.count(), statuses(ann)) == before


def test_it_refuses_an_oversized_name(ann, public, news):
    response = press(page_of(ann), action="save", lists=[str(news.pk)], name="x" * 201)
    assert response.status_code == 422
    ann.refresh_from_db()
    assert ann.name == ""


def test_it_unsubscribes_from_everything(ann, public):
    response = press(page_of(ann), action="everything")
    assert response.status_code == 200
    assert set(statuses(ann).values()) == {"unsubscribed"}
    assert (
        Suppression.objects.get(email_hash=suppression_hash(ann.email)).reason == "unsubscribed_all"
    )
    assert AuditEvent.objects.filter(event="preferences.unsubscribed_all").count() == 1


def test_it_lifts_the_persons_own_stop_when_they_join_a_list_again(ann, public, news):
    press(page_of(ann), action="everything")
    press(page_of(ann), action="save", lists=[str(news.pk)], name="")
    assert statuses(ann)["news"] == "confirmed"
    assert not Suppression.objects.filter(email_hash=suppression_hash(ann.email)).exists()


def test_it_does_not_lift_a_bounce(ann, public, news, staff):
    actions.do_unsubscribe(ann, [news], actor=staff, reason="by_bounce")
    actions.do_add_suppression(ann.workspace, email=ann.email, reason="hard_bounce", actor=staff)
    response = press(page_of(ann), action="save", lists=[str(news.pk)], name="")
    assert response.status_code == 409
    assert statuses(ann)["news"] == "unsubscribed"


@pytest.mark.parametrize(
    "path",
    [
        "/f/m/1.2.AAAA",
        "/f/m/garbage",
        "/f/m/data/garbage",
        "/f/m/erase/garbage",
    ],
)
def test_it_answers_a_forged_link_with_a_clear_page(path, ann):
    response = Client().get(path)
    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()


def test_it_refuses_an_altered_token(ann, public):
    token = make_manage_token(ann.workspace_id, ann.pk)
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert Client().get(f"/f/m/{altered}").status_code == 400
    other = make_manage_token(ann.workspace_id + 1, ann.pk)  # the right person, another workspace
    assert Client().get(f"/f/m/{other}").status_code == 400


def test_it_mails_a_data_link_that_serves_the_export_and_expires(ann, public, settings):
    response = press(page_of(ann), action="data")
    assert response.status_code == 200
    run_engine()
    (message,) = sent_messages(ann.workspace)
    assert message["To"].addresses[0].addr_spec == ann.email
    path = link_in(message, "/f/m/data/")
    download = Client().get(path)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    document = json.loads(download.content)
    assert document["format"] == "mailmarketer.personal-data.v1"
    assert document["profile"]["email"] == ann.email
    assert AuditEvent.objects.filter(event="subscriber.exported").count() == 1
    later = now() + timedelta(hours=24, minutes=1)
    with mock.patch("django.core.signing.time.time", return_value=later.timestamp()):
        assert Client().get(path).status_code == 400
    # A data token is not an erasure token.
    assert Client().get(path.replace("/data/", "/erase/")).status_code == 400


def test_it_caps_the_mails_a_link_can_send(ann, public):
    for _ in range(3):
        assert press(page_of(ann), action="data").status_code == 200
    response = press(page_of(ann), action="erase")
    assert response.status_code == 429
    assert "try again tomorrow" in response.content.decode()


def test_it_erases_only_after_the_mailed_link_is_confirmed_by_post(ann, public):
    press(page_of(ann), action="erase")
    assert Subscriber.objects.filter(pk=ann.pk).exists()
    run_engine()
    (message,) = sent_messages(ann.workspace)
    path = link_in(message, "/f/m/erase/")
    client, csrf = browser(path)
    assert Subscriber.objects.filter(pk=ann.pk).exists()
    assert client.post(path, {}).status_code == 403  # no CSRF token: nothing
    assert Subscriber.objects.filter(pk=ann.pk).exists()
    response = client.post(path, {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 200
    assert "Your data is erased" in response.content.decode()
    assert not Subscriber.objects.filter(pk=ann.pk).exists()
    assert (
        Suppression.objects.get(email_hash=suppression_hash("ann.example@example.com")).reason
        == "erased"
    )
    assert AuditEvent.objects.filter(event="subscriber.erased").count() == 1
    # The person is gone: the links say so, without an error.
    assert Client().get(path).status_code == 400
    assert Client().get(page_of(ann)).status_code == 400


def test_it_puts_the_manage_link_in_every_marketing_message(ann, personas, news, staff):
    from mailmarketer.testing import launch

    launch(personas.acme, [news], subject="Hello", body="Hi {{ subscriber.email }}")
    run_engine()
    (message,) = sent_messages(personas.acme)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    expected = manage_url(ann.workspace_id, ann.pk)
    assert f"Manage your subscription ({expected})" in text
    assert expected in html
    path = "/" + expected.split("://", 1)[1].split("/", 1)[1]
    assert Client().get(path).status_code == 200


def test_it_erases_someone_who_had_unsubscribed_from_everything_as_erased(ann, public):
    press(page_of(ann), action="everything")
    press(page_of(ann), action="erase")
    run_engine()
    path = link_in(sent_messages(ann.workspace)[-1], "/f/m/erase/")
    client, csrf = browser(path)
    client.post(path, {"csrfmiddlewaretoken": csrf})
    suppression = Suppression.objects.get(email_hash=suppression_hash("ann.example@example.com"))
    assert suppression.reason == "erased"
