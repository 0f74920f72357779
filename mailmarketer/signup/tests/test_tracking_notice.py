"""The optional second notice of a form: consent to activity tracking, its own box, its own
consent record with the exact words, and audience.queries.has_tracking_consent."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import ConsentNotice, ConsentRecord, Subscriber
from mailmarketer.audience.queries import has_tracking_consent
from mailmarketer.audience.tokens import make_manage_token
from mailmarketer.signup.actions import do_create_form, do_update_form
from mailmarketer.testing import FORM_NOTICE, client_for, make_token

from .support import confirm_path, form_url, post, run_engine, sent_messages

pytestmark = pytest.mark.django_db
WORDS = "We may record which pages you visit\nand which links you click, to tailor offers."


@pytest.fixture
def tracked(personas, staff, news):
    """A single opt-in form with a tracking notice."""
    return do_create_form(
        personas.acme,
        name="Tracked",
        slug="tracked",
        title="Join",
        lists=[news],
        notice_text=FORM_NOTICE,
        tracking_notice_text=WORDS,
        actor=staff,
    )


def shown(response) -> str:
    match = re.search(
        r'<p class="signup-notice" id="tracking-notice">(.*?)</p>', response.content.decode(), re.S
    )
    assert match
    return html.unescape(match.group(1))


def person(email="ann@example.com"):
    return Subscriber.objects.get(email=email)


def test_it_shows_the_tracking_box_with_the_exact_words(tracked):
    response = Client().get(form_url(tracked))
    assert 'name="tracking_consent"' in response.content.decode()
    assert shown(response) == WORDS


def test_it_records_the_tracking_consent_as_its_own_record(tracked, personas):
    words = shown(Client().get(form_url(tracked)))
    post(tracked, {"email": "ann@example.com", "consent": "1", "tracking_consent": "1"})
    (record,) = ConsentRecord.objects.filter(purpose="tracking")
    assert (record.action, record.mailing_list_id, record.source_type) == ("grant", None, "form")
    assert record.notice.text == words
    assert record.notice.sha256 == ConsentNotice.hash_text(words)
    assert record.confirmed_at is not None
    assert has_tracking_consent(personas.acme, person())
    # The other workspace sees no consent for this person.
    assert not has_tracking_consent(personas.evil, person())


def test_it_records_nothing_when_the_box_is_not_ticked(tracked, personas):
    post(tracked, {"email": "ann@example.com", "consent": "1"})
    assert not ConsentRecord.objects.filter(purpose="tracking").exists()
    assert not has_tracking_consent(personas.acme, person())


def test_it_ignores_the_box_on_a_form_without_a_tracking_notice(personas, staff, news):
    form = do_create_form(
        personas.acme,
        name="Plain",
        slug="plain",
        title="Join",
        lists=[news],
        notice_text=FORM_NOTICE,
        actor=staff,
    )
    assert "tracking_consent" not in Client().get(form_url(form)).content.decode()
    response = post(form, {"email": "ann@example.com", "consent": "1", "tracking_consent": "1"})
    assert response.status_code == 200
    assert not ConsentRecord.objects.filter(purpose="tracking").exists()


def test_it_waits_for_the_confirmation_when_a_mail_goes_out(personas, staff, weekly):
    form = do_create_form(
        personas.acme,
        name="Double",
        slug="double",
        title="Join",
        lists=[weekly],
        notice_text=FORM_NOTICE,
        tracking_notice_text=WORDS,
        actor=staff,
    )
    post(form, {"email": "ann@example.com", "consent": "1", "tracking_consent": "1"})
    assert not has_tracking_consent(personas.acme, person())
    run_engine()
    Client().post(confirm_path(sent_messages(personas.acme)[-1]))
    assert has_tracking_consent(personas.acme, person())
    assert list(
        ConsentRecord.objects.filter(purpose="tracking").order_by("pk").values_list("action")
    ) == [("grant",), ("confirm",)]


def test_it_withdraws_through_the_preference_centre(tracked, personas):
    post(tracked, {"email": "ann@example.com", "consent": "1", "tracking_consent": "1"})
    ann = person()
    path = f"/f/m/{make_manage_token(ann.workspace_id, ann.pk)}"
    client = Client(enforce_csrf_checks=True)
    page = client.get(path).content.decode()
    assert "We may record which pages you visit" in page
    csrf = client.cookies["csrftoken"].value
    data = {"action": "save", "lists": [], "name": "", "tracking_shown": "1"}
    client.post(path, {**data, "csrfmiddlewaretoken": csrf})
    assert not has_tracking_consent(personas.acme, ann)
    client.post(path, {**data, "tracking": "1", "csrfmiddlewaretoken": csrf})
    assert has_tracking_consent(personas.acme, ann)
    assert list(
        ConsentRecord.objects.filter(purpose="tracking").order_by("pk").values_list("action")
    ) == [("grant",), ("withdraw",), ("grant",)]


def test_it_removes_the_box_when_the_words_are_emptied(tracked, staff):
    do_update_form(tracked, {}, tracking_notice_text="", actor=staff)
    assert "tracking_consent" not in Client().get(form_url(tracked)).content.decode()


def test_it_sets_the_tracking_notice_through_the_api(personas, news):
    token = make_token(personas.acme, "marketer")
    response = Client().post(
        "/api/v1/forms",
        {
            "name": "Api",
            "slug": "api",
            "title": "Join",
            "lists": [news.pk],
            "notice_text": FORM_NOTICE,
            "tracking_notice_text": WORDS,
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.raw}",
    )
    assert response.status_code == 201, response.content
    assert response.json()["tracking_notice"]["text"] == WORDS


def test_it_sets_the_tracking_notice_in_the_builder(tracked, personas):
    client = client_for(personas.bob)
    page = client.get(f"/app/acme/forms/{tracked.pk}/edit/").content.decode()
    assert "Activity-tracking notice" in page
    assert html.escape(WORDS.splitlines()[0]) in page


def test_it_refuses_a_notice_of_another_workspace(personas, tracked):
    post(tracked, {"email": "ann@example.com", "consent": "1"})
    other = audience.notice_for_text(personas.evil, "x", "Other words")
    with pytest.raises(Exception, match="another workspace"):
        audience.do_grant_tracking_consent(
            person(),
            notice=other,
            source=audience.ConsentSource(type="admin"),
            confirmed=True,
            actor=Actor.system(),
        )
