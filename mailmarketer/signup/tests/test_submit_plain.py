"""The plain sign-up (a newsletter form, single opt-in lists only): what it stores, in how many
statements, and that every case it does not decide goes to the general path unchanged.

A newsletter form's sign-up is answered from the spool and stored by the worker's duty
(signup/spooled.py): `post_json` runs that duty after each post, and the statement counts are
the answer's (none, the form's objects cached) and the worker's per sign-up."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription, Suppression
from mailmarketer.signup import altcha, queries_submit, spooled
from mailmarketer.signup.actions import do_update_form
from mailmarketer.signup.models import Submission
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import EMBED, make_form_token
from mailmarketer.testing import FORM_NOTICE as NOTICE

pytestmark = pytest.mark.django_db

# Statements the worker spends on a batch of one plain sign-up, beyond the batch's own: the
# challenge spent, the lists read, the address's subscriber and suppression read; then a new
# address set-based (both limits' counts, the subscriber, memberships, consent records,
# submission and audit row: the same for a batch of any size, tests/test_spooled.py), a known
# one by the general path in its savepoint (its reads, its writes, the submission and audit
# row). Was about 30 before (docs/forms.md), then 10 in the web process; the answer now waits
# on none.
PLAIN_STATEMENTS = 12


@pytest.fixture
def plain(personas, staff, news, offers):
    """A newsletter form to two single opt-in lists, with an activity-tracking box."""
    from mailmarketer.signup.actions import do_create_form

    return do_create_form(
        personas.acme,
        name="Plain",
        slug="plain",
        title="News",
        fields=[{"key": "first_name", "type": "builtin"}, {"key": "company", "type": "builtin"}],
        lists=[news, offers],
        notice_text=NOTICE,
        tracking_notice_text="Track what I read.",
        actor=staff,
    )


@pytest.fixture(autouse=True)
def _fresh_for_the_test(monkeypatch):
    # A loaded machine may take seconds between two posts: the cached form stays fresh.
    monkeypatch.setattr(queries_submit, "FRESH_SECONDS", 600)


@pytest.fixture(autouse=True)
def _no_pruning():
    # One spend in 200 also deletes old challenges: not what these counts are about.
    with mock.patch.object(altcha.random, "randrange", return_value=1):
        yield


def post_json(form, ip="203.0.113.7", ingest=True, **fields):
    body = {
        "form_token": make_form_token(form.pk, EMBED),
        "altcha": altcha_payload(form),
        "email": "ann@example.com",
        "first_name": "Ann",
        "consent": True,
        **fields,
    }
    response = Client().post(
        f"/f/{form.workspace.slug}/{form.slug}.json",
        data=json.dumps(body),
        content_type="application/json",
        REMOTE_ADDR=ip,
        HTTP_USER_AGENT="Firefox/128",
    )
    if ingest:
        spooled.ingest_all()
    return response


def counted(form, **fields):
    """The worker's statements for this one sign-up (what ingesting it costs more than
    ingesting a batch without it); the answer must have cost none."""
    with CaptureQueriesContext(connection) as answer:
        response = post_json(form, ingest=False, **fields)
    assert response.status_code == 200, response.content
    assert len(answer) == 0, [q["sql"] for q in answer]
    # The batch's own statements (lock, mark, form, lists), counted with an empty sign-up
    # spooled beside it: a second spooled line of the same form adds only its own.
    spooled.spool.close()
    with CaptureQueriesContext(connection) as worker:
        spooled.ingest_all()
    overhead = _batch_overhead(form)
    return len(worker) - overhead


def _batch_overhead(form) -> int:
    """The statements of ingesting one file whose only line is a sign-up of `form` dropped
    before anything is stored (its notice's hash does not match): lock, mark, form read,
    file done."""
    spooled.spool.append(_line(form))
    spooled.spool.close()
    with CaptureQueriesContext(connection) as worker:
        spooled.ingest_all()
    return len(worker)


def _line(form) -> dict:
    return {
        "v": spooled.VERSION,
        "ws": form.workspace_id,
        "f": form.pk,
        "n": form.notice_id,
        "nh": "",
        "tn": None,
        "e": "x@example.com",
        "nm": "",
        "a": {},
        "l": [],
        "tr": False,
        "pu": "",
        "via": "json",
        "ik": "k",
        "ip": None,
        "ua": "",
        "rf": "",
        "at": "2026-01-01T00:00:00+00:00",
        "ch": None,
    }


def test_it_signs_a_new_address_up_in_a_fixed_number_of_statements(plain):
    post_json(plain, email="warm@example.com")  # fills this process's form cache
    assert counted(plain) <= PLAIN_STATEMENTS
    # And a known address joining a list, or already on them all, in no more.
    person = Subscriber.objects.get(email="ann@example.com")
    Subscription.objects.filter(subscriber=person, mailing_list__slug="offers").delete()
    assert counted(plain, email="ANN@example.com") <= PLAIN_STATEMENTS
    assert counted(plain, email="ann@example.com") <= PLAIN_STATEMENTS - 2


# On PostgreSQL a known address's writes take two statements: the subscriber, memberships and
# consent records in one (data-modifying CTEs), the submission and its audit row in the other.
PG_PLAIN_STATEMENTS = 11


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's single-statement writes"
)
def test_it_writes_in_two_statements_on_postgresql(plain):
    post_json(plain, email="warm@example.com")
    assert counted(plain) <= PG_PLAIN_STATEMENTS
    person = Subscriber.objects.get(email="ann@example.com")
    Subscription.objects.filter(subscriber=person, mailing_list__slug="offers").delete()
    assert counted(plain, email="ANN@example.com") <= PG_PLAIN_STATEMENTS - 2
    # Already on every list and tracking asked for: the consent records are still written.
    assert counted(plain, email="ann@example.com", tracking_consent=True) <= PG_PLAIN_STATEMENTS
    assert Submission.objects.count() == 4
    assert AuditEvent.objects.filter(event="form.submitted").count() == 4
    assert ConsentRecord.objects.filter(subscriber=person).count() >= 3


def test_it_stores_what_the_general_path_stores_with_one_audit_row(plain, personas):
    before = AuditEvent.objects.count()
    post_json(plain, company="Beans Ltd", tracking_consent=True)
    person = Subscriber.objects.get(email="ann@example.com")
    assert (person.name, person.source, person.status) == ("Ann", "form", "enabled")
    assert person.attributes == {"first_name": "Ann", "company": "Beans Ltd"}
    assert set(person.subscriptions.values_list("mailing_list__slug", "status")) == {
        ("news", "confirmed"),
        ("offers", "confirmed"),
    }
    records = list(ConsentRecord.objects.filter(subscriber=person).order_by("purpose"))
    assert [(r.purpose, r.action, r.notice.text) for r in records] == [
        ("email:news", "grant", NOTICE),
        ("email:offers", "grant", NOTICE),
        ("tracking", "grant", "Track what I read."),
    ]
    assert all(r.confirmed_at == r.at for r in records)
    assert {(r.source_type, r.source_id, r.ip, r.user_agent) for r in records} == {
        ("form", str(plain.pk), "203.0.113.7", "Firefox/128")
    }
    (submission,) = Submission.objects.all()
    assert (submission.subscriber, submission.outcome, submission.via, submission.tracking) == (
        person,
        "subscribed",
        "json",
        True,
    )
    (event,) = AuditEvent.objects.order_by("pk")[before:]
    assert event.event == "form.submitted"
    assert event.new["subscriber"] == str(person.uuid)
    assert event.new["created"] is True
    assert sorted(event.new["lists"]) == ["news", "offers"]
    assert event.new["tracking_consent"] == "grant"


def test_it_answers_an_already_subscribed_address_alike_and_writes_no_consent(plain):
    first = post_json(plain)
    again = post_json(plain)
    assert first.json() == again.json()
    assert ConsentRecord.objects.count() == 2
    assert list(Submission.objects.order_by("pk").values_list("outcome", flat=True)) == [
        "subscribed",
        "already",
    ]


def test_it_leaves_an_unsubscribed_member_to_the_confirmation_path(plain, news, staff):
    post_json(plain)
    person = Subscriber.objects.get(email="ann@example.com")
    audience.do_unsubscribe(person, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    post_json(plain)
    # Only the person may undo their opt-out, by confirming: not renewed by the post.
    assert person.subscriptions.get(mailing_list=news).status == "unsubscribed"
    assert Submission.objects.order_by("-pk").first().outcome == "confirming"


def test_it_never_signs_up_a_suppressed_address(plain, personas, staff):
    audience.do_add_suppression(
        personas.acme, email="ann@example.com", reason="complaint", actor=staff
    )
    assert post_json(plain).status_code == 200
    assert not Subscriber.objects.filter(email="ann@example.com").exists()
    assert Submission.objects.get().outcome == "refused"
    assert Suppression.objects.count() == 1


def test_it_fills_in_a_known_persons_missing_name_by_the_general_path(plain, personas, staff):
    person = audience.do_create_subscriber(personas.acme, email="ann@example.com", actor=staff)
    post_json(plain)
    person.refresh_from_db()
    assert person.name == "Ann"
    assert AuditEvent.objects.filter(event="subscriber.updated", object_id=str(person.pk)).exists()


def test_it_counts_the_limits_in_its_one_read(plain, monkeypatch):
    from mailmarketer.signup import limits

    monkeypatch.setattr(limits, "PER_IP", 2)
    assert post_json(plain, email="a@example.com").status_code == 200
    assert post_json(plain, email="b@example.com").status_code == 200
    refused = post_json(plain, email="c@example.com")
    assert refused.status_code == 429
    assert Submission.objects.count() == 2
    assert not Subscriber.objects.filter(email="c@example.com").exists()


def test_a_concurrent_sign_up_of_the_same_address_falls_back_to_the_general_path(
    plain, personas, staff
):
    # The address is created after this sign-up read that it was unknown: the insert does
    # nothing, and the general path finds and subscribes the person made meanwhile.
    real = queries_submit.submit_state

    def read_then_create(*args, **kwargs):
        state = real(*args, **kwargs)
        audience.do_create_subscriber(
            personas.acme, email="ann@example.com", name="Ann", actor=staff
        )
        return state

    with mock.patch.object(queries_submit, "submit_state", read_then_create):
        assert post_json(plain, first_name="").status_code == 200
    (person,) = Subscriber.objects.filter(email="ann@example.com")
    assert person.subscriptions.count() == 2
    assert ConsentRecord.objects.filter(subscriber=person).count() == 2


def test_the_cached_form_follows_staff_edits_at_once(plain, news, offers, staff):
    post_json(plain, email="a@example.com")
    do_update_form(plain, {}, notice_text="New words.", lists=[news], actor=staff)
    post_json(plain, email="b@example.com")
    record = ConsentRecord.objects.get(subscriber__email="b@example.com")
    assert (record.purpose, record.notice.text) == ("email:news", "New words.")
    # A list's opt-in is not the form's row, and is seen too: now it waits for a mail.
    news.optin = "double"
    news.save()
    post_json(plain, email="c@example.com")
    person = Subscriber.objects.get(email="c@example.com")
    assert person.subscriptions.get().status == "unconfirmed"


def test_the_form_cache_is_per_form_and_bounded(plain, monkeypatch):
    monkeypatch.setattr(queries_submit, "MAX_CACHED", 1)
    queries_submit.forget_forms()
    assert queries_submit.form_config("acme", "plain").form.pk == plain.pk
    assert queries_submit.form_config("acme", "nothing") is None
    assert len(queries_submit._cache) == 1
