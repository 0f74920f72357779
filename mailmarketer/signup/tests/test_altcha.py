"""ALTCHA proof of work on every way into a form: a missing, wrong, expired, foreign or replayed
solution is refused with the field named and nothing stored, on the hosted page, the embed's
post and the JSON endpoint; a replay fails on a fresh database connection too; the embed's post
without JavaScript lands on the hosted page with what was typed and the widget; the challenge
endpoint; the workspace's switch and difficulty, with who may change them."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test import Client
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import ConsentRecord, Subscriber
from mailmarketer.signup import altcha, spooled
from mailmarketer.signup.actions import Visit, do_submit_form
from mailmarketer.signup.fields import read_submission
from mailmarketer.signup.models import Submission
from mailmarketer.signup.models_altcha import SolvedChallenge
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import EMBED, make_form_token

from .support import GOOD, form_url, post

pytestmark = pytest.mark.django_db


def stored() -> tuple[int, int, int, int]:
    return (
        Subscriber.objects.count(),
        Submission.objects.count(),
        ConsentRecord.objects.count(),
        SolvedChallenge.objects.count(),
    )


def post_json(form, altcha_value, data=None):
    body = {"form_token": make_form_token(form.pk, EMBED), **(data or GOOD)}
    if altcha_value is not None:
        body["altcha"] = altcha_value
    response = Client(enforce_csrf_checks=True).post(
        form_url(form) + ".json",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_ORIGIN="http://127.0.0.1:9999",
    )
    spooled.ingest_all()  # a newsletter sign-up is stored by the worker (signup/spooled.py)
    return response


def edited(payload: str, **changes) -> str:
    data = json.loads(base64.b64decode(payload))
    data.update(changes)
    return base64.b64encode(json.dumps(data).encode()).decode()


def other_form(personas, staff, news):
    from mailmarketer.signup.actions import do_create_form

    return do_create_form(
        personas.acme,
        name="Other",
        slug="other",
        title="Other",
        lists=[news],
        notice_text="Yes.",
        actor=staff,
    )


def bad_payloads(newsletter, personas, staff, news):
    good = altcha_payload(newsletter)
    data = json.loads(base64.b64decode(good))
    return {
        "missing": ("", "altcha_missing"),
        "garbage": ("not base64 at all!", "altcha_invalid"),
        "not json": (base64.b64encode(b"{nope").decode(), "altcha_invalid"),
        "wrong number": (edited(good, number=data["number"] + 1), "altcha_invalid"),
        "forged signature": (edited(good, signature="0" * 64), "altcha_invalid"),
        # Moving the form id: the salt is hashed into the signed challenge.
        "edited salt": (
            edited(good, salt=data["salt"].replace(f"form={newsletter.pk}", "form=999")),
            "altcha_invalid",
        ),
        "other form's": (altcha_payload(other_form(personas, staff, news)), "altcha_invalid"),
        "expired": (
            altcha_payload(newsletter, expires=now() - timedelta(seconds=1)),
            "altcha_expired",
        ),
        "too long": ("A" * 5000, "altcha_invalid"),
    }


CASES = [
    "missing",
    "garbage",
    "not json",
    "wrong number",
    "forged signature",
    "edited salt",
    "other form's",
    "expired",
    "too long",
]


@pytest.mark.parametrize("case", CASES)
def test_it_refuses_a_bad_solution_in_json_naming_the_field_and_stores_nothing(
    newsletter, personas, staff, news, case
):
    value, reason = bad_payloads(newsletter, personas, staff, news)[case]
    response = post_json(newsletter, value)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["errors"] == [{"field": "altcha", "message": altcha_text(reason)}]
    assert stored() == (0, 0, 0, 0)


def altcha_text(reason: str) -> str:
    from mailmarketer.signup.texts import text

    return text("en", reason)


@pytest.mark.parametrize("case", CASES)
def test_it_refuses_a_bad_solution_on_the_page_with_a_clear_message(
    newsletter, personas, staff, news, case
):
    value, reason = bad_payloads(newsletter, personas, staff, news)[case]
    response = post(newsletter, {**GOOD, "altcha": value})
    assert response.status_code == 422
    page = response.content.decode()
    assert altcha_text(reason).replace("“", "&ldquo;")[:30] in page or (
        altcha_text(reason)[:30] in page
    )
    assert "<altcha-widget" in page
    assert stored() == (0, 0, 0, 0)


def test_it_refuses_a_json_post_without_the_field_at_all(newsletter):
    response = post_json(newsletter, None)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "altcha"
    assert stored() == (0, 0, 0, 0)


def test_it_takes_a_solution_once_and_refuses_it_replayed(newsletter):
    payload = altcha_payload(newsletter)
    first = post_json(newsletter, payload)
    assert first.status_code == 200, first.content
    again = post_json(newsletter, payload, {**GOOD, "email": "bo@example.com"})
    assert again.status_code == 422
    assert again.json()["errors"] == [{"field": "altcha", "message": altcha_text("altcha_used")}]
    page_again = post(newsletter, {**GOOD, "email": "cy@example.com", "altcha": payload})
    assert page_again.status_code == 422
    assert Submission.objects.count() == 1
    assert SolvedChallenge.objects.count() == 1
    assert not Subscriber.objects.filter(email__in=["bo@example.com", "cy@example.com"]).exists()


def test_it_lets_a_solution_whose_submission_was_refused_be_sent_again(newsletter, personas):
    """The spent row is in the submission's transaction: a post refused later (here by the
    per-address limit) spends nothing."""
    from mailmarketer.signup import limits

    for _ in range(limits.PER_ADDRESS):
        assert post(newsletter).status_code == 200
    payload = altcha_payload(newsletter)
    assert post(newsletter, {**GOOD, "altcha": payload}).status_code == 429
    assert not SolvedChallenge.objects.filter(
        challenge=json.loads(base64.b64decode(payload))["challenge"]
    ).exists()
    other = post(newsletter, {**GOOD, "email": "new@example.com", "altcha": payload})
    assert other.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_replay_on_a_fresh_database_connection(newsletter):
    """As another web process would, or this one after a restart: nothing but the database
    remembers the spent challenge."""
    payload = altcha_payload(newsletter)
    assert post_json(newsletter, payload).status_code == 200
    connections.close_all()  # the next query opens a new connection (a new backend on PG)

    submitted = read_submission(
        newsletter, {**GOOD, "email": "bo@example.com"}, offered_list_ids=[], language="en"
    )
    solved = altcha.check(newsletter, payload)  # still a valid solution, not yet expired
    with pytest.raises(altcha.AltchaRefused) as refused:
        do_submit_form(newsletter, submitted, Visit(via="json"), solved=solved)
    assert refused.value.reason == "altcha_used"
    assert Submission.objects.count() == 1
    assert not Subscriber.objects.filter(email="bo@example.com").exists()


def test_it_sends_a_no_javascript_embed_post_to_the_hosted_page_with_the_widget(newsletter):
    """The embed posts without a solution when JavaScript is off: the hosted page comes back
    with what was typed, the box ticked, a fresh page token and the widget; sent from there
    with a solution, it is accepted."""
    data = {**GOOD, "form_token": make_form_token(newsletter.pk, EMBED), "employees": "12"}
    landed = Client(enforce_csrf_checks=True).post(form_url(newsletter), data=data)
    assert landed.status_code == 422
    page = landed.content.decode()
    assert "One more step" in page
    assert 'value="ann@example.com"' in page and 'value="12"' in page
    assert 'id="f-consent" name="consent" value="1" required checked' in page
    assert f'challengeurl="/f/acme/{newsletter.slug}/challenge"' in page
    assert "/static/signup/altcha/altcha.js" in page
    assert stored() == (0, 0, 0, 0)

    again = post(newsletter, {**GOOD, "employees": "12"})
    assert again.status_code == 200
    assert Submission.objects.get().via == "page"


def test_it_serves_a_challenge_bound_to_the_form_with_cors_for_its_origins(newsletter, personas):
    altcha.do_set_form_protection(
        personas.acme, required=True, maxnumber=20_000, actor=Actor.system("test")
    )
    url = form_url(newsletter) + "/challenge"
    response = Client().get(url, HTTP_ORIGIN="http://127.0.0.1:9999")
    assert response.status_code == 200
    body = response.json()
    assert body["algorithm"] == "SHA-256" and body["maxNumber"] == 20_000
    assert f"form={newsletter.pk}" in body["salt"] and "expires=" in body["salt"]
    assert response["Access-Control-Allow-Origin"] == "http://127.0.0.1:9999"
    assert "no-store" in response["Cache-Control"]
    other = Client().get(url, HTTP_ORIGIN="https://evil.test")
    assert "Access-Control-Allow-Origin" not in other
    assert Client().get("/f/acme/nope/challenge").status_code == 404


def test_it_asks_for_nothing_when_the_workspace_switches_it_off(newsletter, personas):
    altcha.do_set_form_protection(
        personas.acme, required=False, maxnumber=100_000, actor=Actor.system("test")
    )
    page = Client().get(form_url(newsletter)).content.decode()
    assert "altcha-widget" not in page and "altcha.js" not in page
    assert Client().get(form_url(newsletter) + "/challenge").status_code == 404
    assert post_json(newsletter, None).status_code == 200


def test_it_shows_the_widget_on_the_page_and_in_the_embed_code(newsletter, alice_client):
    page = Client().get(form_url(newsletter)).content.decode()
    assert '<altcha-widget name="altcha"' in page and "hidefooter hidelogo" in page
    detail = alice_client.get(f"/app/acme/forms/{newsletter.pk}/").content.decode()
    assert "http://testserver/static/signup/altcha/altcha.js" in detail
    assert f"http://testserver/f/acme/{newsletter.slug}/challenge" in detail


# -- the switch and the difficulty -----------------------------------------------------------


def test_it_audits_a_change_of_the_switch_or_the_difficulty(personas, alice_client):
    url = "/app/acme/settings/forms/"
    assert "Forms protection" in alice_client.get(url).content.decode()
    response = alice_client.post(url + "save/", {"altcha_maxnumber": "50000"})
    assert response.status_code == 302
    assert altcha.protection_for(personas.acme) == altcha.Protection(False, 50_000)
    event = AuditEvent.objects.get(event="forms.protection_changed")
    assert event.old == {"altcha_required": True, "altcha_maxnumber": 100_000}
    assert event.new == {"altcha_required": False, "altcha_maxnumber": 50_000}
    alice_client.post(url + "save/", {"altcha_maxnumber": "50000"})
    assert AuditEvent.objects.filter(event="forms.protection_changed").count() == 1


@pytest.mark.parametrize("maxnumber", ["10", "99999999", "lots", ""])
def test_it_refuses_a_difficulty_out_of_range(personas, alice_client, maxnumber):
    response = alice_client.post(
        "/app/acme/settings/forms/save/", {"altcha_required": "on", "altcha_maxnumber": maxnumber}
    )
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(event="forms.protection_changed").exists()
    with pytest.raises(Exception, match="difficulty"), transaction.atomic():
        altcha.do_set_form_protection(
            personas.acme, required=True, maxnumber=10, actor=Actor.system("test")
        )


@pytest.mark.parametrize(
    ("who", "get", "post_status"),
    [
        ("alice", 200, 302),  # owner
        ("bob", 200, 403),  # marketer: sees the settings, changes none
        ("carol", 403, 403),  # analyst
        ("mallory", 404, 404),  # another workspace
    ],
)
def test_it_lets_only_settings_managers_change_the_protection(personas, who, get, post_status):
    from mailmarketer.testing import client_for

    client = client_for(getattr(personas, who))
    assert client.get("/app/acme/settings/forms/").status_code == get
    response = client.post(
        "/app/acme/settings/forms/save/", {"altcha_required": "on", "altcha_maxnumber": "2000"}
    )
    assert response.status_code == post_status
    assert AuditEvent.objects.filter(event="forms.protection_changed").exists() == (
        post_status == 302
    )


@pytest.mark.django_db(transaction=True)
def test_it_lets_only_one_of_two_racing_posts_spend_a_solution(newsletter):
    """Two processes spending the same solution at once: the second insert waits for the
    first transaction and then inserts nothing (one connection per thread, as per process)."""
    import threading

    if connections["default"].vendor == "sqlite":
        # SQLite runs one writer at a time (the second waits out the busy timeout on the file
        # database), but the test database is in memory with a shared cache, whose table
        # locks fail at once instead of waiting: nothing to learn here.
        pytest.skip("needs PostgreSQL (the in-memory SQLite test database cannot wait)")

    solved = altcha.check(newsletter, altcha_payload(newsletter))
    first_in = threading.Event()
    outcome: dict[str, str] = {}

    def first():
        try:
            with transaction.atomic():
                altcha.spend(newsletter.workspace, solved)
                first_in.set()
                threading.Event().wait(0.5)  # holds its transaction open meanwhile
            outcome["first"] = "spent"
        finally:
            first_in.set()
            connections.close_all()

    def second():
        first_in.wait(10)
        try:
            with transaction.atomic():
                altcha.spend(newsletter.workspace, solved)
            outcome["second"] = "spent"
        except altcha.AltchaRefused as refused:
            outcome["second"] = refused.reason
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome == {"first": "spent", "second": "altcha_used"}
    assert SolvedChallenge.objects.count() == 1
