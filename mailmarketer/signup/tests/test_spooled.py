"""Newsletter sign-ups through the spool (signup/spooled.py): answered once the line is on
disk, stored by the worker's duty exactly once whatever stops it, with the limits and the
single-use proof of work enforced at ingestion, where the database decides."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import ConsentRecord, Subscriber
from mailmarketer.lib import group_spool
from mailmarketer.signup import limits, queries_submit, spooled
from mailmarketer.signup.actions import do_create_form, do_update_form
from mailmarketer.signup.models import Confirmation, Submission
from mailmarketer.signup.models_altcha import SolvedChallenge
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import EMBED, make_form_token
from mailmarketer.testing import FORM_NOTICE as NOTICE

from .support import post, run_engine, sent_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def plain(personas, staff, news):
    return do_create_form(
        personas.acme,
        name="Plain",
        slug="plain",
        title="News",
        fields=[{"key": "first_name", "type": "builtin"}],
        lists=[news],
        notice_text=NOTICE,
        actor=staff,
    )


@pytest.fixture(autouse=True)
def _clean_counts():
    spooled.dropped.clear()
    yield
    spooled.dropped.clear()


def send(form, email="ann@example.com", *, ip="203.0.113.7", payload=None, token=None):
    """A JSON sign-up, answered but not ingested."""
    body = {
        "form_token": token or make_form_token(form.pk, EMBED),
        "altcha": payload or altcha_payload(form),
        "email": email,
        "first_name": "Ann",
        "consent": True,
    }
    return Client().post(
        f"/f/{form.workspace.slug}/{form.slug}.json",
        data=json.dumps(body),
        content_type="application/json",
        REMOTE_ADDR=ip,
    )


def spooled_files() -> list:
    spooled.spool.close()
    return group_spool.ready_files(spooled.PREFIX)


def test_the_answer_waits_for_the_line_and_the_worker_stores_it(plain):
    response = send(plain)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert not Submission.objects.exists() and not Subscriber.objects.exists()
    (path,) = spooled_files()
    (line,) = path.read_bytes().splitlines()
    assert json.loads(line)["e"] == "ann@example.com"
    assert spooled.ingest_all() == 1
    person = Subscriber.objects.get(email="ann@example.com")
    (record,) = ConsentRecord.objects.filter(subscriber=person)
    assert (record.purpose, record.notice.text) == ("email:news", NOTICE)
    assert Submission.objects.get().outcome == "subscribed"
    assert AuditEvent.objects.filter(event="form.submitted").count() == 1
    assert SolvedChallenge.objects.count() == 1
    assert spooled_files() == [] and spooled.ingest_all() == 0


def test_the_answer_is_the_same_for_a_known_address(plain):
    first = send(plain)
    spooled.ingest_all()
    again = send(plain, ip="203.0.113.8")
    assert first.content == again.content


def test_sign_ups_answered_while_the_database_is_down_are_stored_when_it_is_back(
    plain, monkeypatch
):
    assert send(plain, "warm@example.com").status_code == 200  # the form's objects cached
    monkeypatch.setattr(queries_submit, "FRESH_SECONDS", 0)  # every post tries the database

    def down(self, *args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(BaseDatabaseWrapper, "cursor", down)
        for n in range(3):
            assert send(plain, f"p{n}@example.com", ip=f"203.0.113.{n}").status_code == 200
    assert Submission.objects.count() == 0
    spooled.ingest_all()
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "warm@example.com",
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    }
    assert ConsentRecord.objects.count() == 4


def test_the_database_down_at_ingestion_keeps_the_file_for_the_next_round(plain, monkeypatch):
    send(plain)
    spooled.spool.close()

    def down(*args, **kwargs):
        raise OperationalError("server closed the connection")

    with monkeypatch.context() as patched:
        patched.setattr(spooled, "subscribe_new_people", down)
        with pytest.raises(OperationalError):
            spooled.ingest_signup_one()
    assert not Submission.objects.exists() and len(spooled_files()) == 1
    assert spooled.ingest_all() == 1 and Submission.objects.count() == 1


class Killed(BaseException):
    """What a worker killed mid-batch amounts to: nothing after it runs, nothing catches it."""


def test_a_worker_killed_mid_batch_stores_nothing_then_everything_once(plain, monkeypatch):
    for n in range(5):
        assert send(plain, f"p{n}@example.com", ip=f"203.0.113.{n}").status_code == 200
    spooled.spool.close()

    def dies(*args, **kwargs):  # after the people, memberships and consent records
        raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(spooled, "_insert_submissions", dies)
        with pytest.raises(Killed):
            spooled.ingest_signup_one()
    assert not Submission.objects.exists() and not SolvedChallenge.objects.exists()
    assert not Subscriber.objects.exists() and not ConsentRecord.objects.exists()
    monkeypatch.setattr(spooled, "BATCH", 2)
    assert spooled.ingest_all() == 3  # three batches of the same file
    assert Submission.objects.count() == Subscriber.objects.count() == 5
    assert SolvedChallenge.objects.count() == 5 and not spooled.dropped


def test_it_skips_a_torn_last_line_and_stores_the_rest(plain):
    send(plain, "a@example.com")
    send(plain, "b@example.com", ip="203.0.113.8")
    (path,) = spooled_files()
    whole = path.read_bytes()
    with path.open("ab") as out:
        out.write(whole.splitlines()[0][:40])  # a writer killed mid-line: never answered
    spooled.ingest_all()
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "a@example.com",
        "b@example.com",
    }
    assert spooled.dropped["torn"] == 1 and spooled_files() == []


def test_a_replayed_solution_is_refused_here_and_stored_once_from_another_process(plain):
    payload = altcha_payload(plain)
    assert send(plain, "a@example.com", payload=payload).status_code == 200
    refused = send(plain, "b@example.com", payload=payload)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "altcha"
    spooled.memory.forget()  # another web process, which never saw it: it answers
    assert send(plain, "c@example.com", payload=payload).status_code == 200
    spooled.ingest_all()
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["a@example.com"]
    assert SolvedChallenge.objects.count() == 1
    assert spooled.dropped["altcha_replayed"] == 1


def test_the_limits_hold_across_processes_at_ingestion(plain, monkeypatch):
    monkeypatch.setattr(limits, "PER_ADDRESS", 2)
    assert send(plain, ip="203.0.113.1").status_code == 200
    assert send(plain, ip="203.0.113.2").status_code == 200
    assert send(plain, ip="203.0.113.3").status_code == 429  # this process counted two
    for n in range(4, 6):
        spooled.memory.forget()  # other processes, each seeing its first
        assert send(plain, ip=f"203.0.113.{n}").status_code == 200
    spooled.ingest_all()
    assert Submission.objects.count() == 2
    assert spooled.dropped["over_limit"] == 2


def test_the_memory_counts_per_workspace_as_the_database_does(plain, personas, monkeypatch):
    system = Actor.system("test")
    evil_news = audience.do_create_list(personas.evil, name="News", slug="news", actor=system)
    other = do_create_form(
        personas.evil,
        name="Plain",
        slug="plain",
        title="News",
        fields=[{"key": "first_name", "type": "builtin"}],
        lists=[evil_news],
        notice_text=NOTICE,
        actor=Actor.system("test"),
    )
    monkeypatch.setattr(limits, "PER_ADDRESS", 1)
    assert send(plain, ip="203.0.113.1").status_code == 200
    assert send(other, ip="203.0.113.2").status_code == 200  # another workspace's limit
    assert send(plain, ip="203.0.113.3").status_code == 429
    spooled.ingest_all()
    assert Submission.objects.count() == 2


def test_double_opt_in_sends_one_confirmation_for_sign_ups_in_one_batch(
    newsletter, personas, staff
):
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
    post(newsletter, ingest=False)
    post(other, {"email": "ann@example.com", "consent": "1"}, ingest=False)
    assert not Confirmation.objects.exists()
    spooled.ingest_all()
    run_engine()
    assert Confirmation.objects.count() == 1
    assert len(sent_messages(personas.acme)) == 1


def test_the_consent_record_names_the_words_shown_even_if_the_form_changed_since(plain, staff):
    send(plain)
    do_update_form(plain, {}, notice_text="Other words now.", actor=staff)
    spooled.ingest_all()
    (record,) = ConsentRecord.objects.all()
    assert record.notice.text == NOTICE
    assert Submission.objects.get().notice.text == NOTICE


def test_a_sign_up_for_a_form_deleted_meanwhile_is_dropped_and_counted(plain, staff):
    from mailmarketer.signup.actions import do_delete_form

    send(plain)
    do_delete_form(plain, actor=staff)
    spooled.ingest_all()
    assert not Subscriber.objects.exists() and spooled.dropped["form_gone"] == 1
    assert spooled_files() == []


def test_known_and_new_addresses_in_one_batch_each_take_their_path(plain, personas, staff):
    """New addresses are stored set-based, known ones one by one by the general path; the
    same address twice in a batch: the first creates it, the second finds it."""
    audience.do_create_subscriber(personas.acme, email="known@example.com", actor=staff)
    for n, email in enumerate(["a@example.com", "known@example.com", "a@example.com"]):
        assert send(plain, email, ip=f"203.0.113.{n}").status_code == 200
    spooled.ingest_all()
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "known@example.com",
    ]
    assert sorted(Submission.objects.values_list("outcome", flat=True)) == [
        "already",
        "subscribed",
        "subscribed",
    ]
    assert ConsentRecord.objects.count() == 2
    assert AuditEvent.objects.filter(event="form.submitted").count() == 3


def test_the_set_based_store_writes_a_fixed_number_of_statements(plain, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(group_spool, "ROTATE_SECONDS", 600)  # one file per size, however slow
    send(plain, "first@example.com")
    spooled.ingest_all()  # makes the ingestion's lock row
    counts = []
    for size in (2, 12):
        for n in range(size):
            send(plain, f"p{size}-{n}@example.com", ip=f"198.51.{size}.{n}")
        spooled.spool.close()
        with CaptureQueriesContext(connection) as queries:
            spooled.ingest_all()
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert Submission.objects.count() == 15 and ConsentRecord.objects.count() == 15


def test_a_token_whose_signature_was_checked_before_still_expires(plain):
    import time
    from unittest import mock

    from mailmarketer.signup.tokens import PAGE

    token = make_form_token(plain.pk, PAGE)
    assert send(plain, "a@example.com", token=token).status_code == 200
    assert send(plain, "b@example.com", token=token, ip="203.0.113.8").status_code == 200
    later = time.time() + 25 * 3600  # the page's token lasts 24 hours
    with mock.patch("time.time", return_value=later):
        refused = send(plain, "c@example.com", token=token, ip="203.0.113.9")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "form_token"
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert send(plain, "d@example.com", token=forged, ip="203.0.113.10").status_code == 422


def test_webinar_resource_and_evaluation_forms_are_not_spooled():
    from mailmarketer.signup.models import Form

    assert [k for k in Form.Kind if spooled.takes(Form(kind=k))] == [Form.Kind.NEWSLETTER]
