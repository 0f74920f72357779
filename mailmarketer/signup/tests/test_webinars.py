"""Webinars: registration through a webinar form, the waiting list, the cancel link, the
invitation (.ics) in every mail, moving and cancelling the event, reminders by the worker."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core import signing
from django.test import Client
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import (
    ConsentNotice,
    ConsentRecord,
    Fact,
    FactKind,
    Subscriber,
    Subscription,
)
from mailmarketer.campaigns.models import Campaign
from mailmarketer.lib.worker import registered_duties
from mailmarketer.signup import webinars
from mailmarketer.signup.models import Submission
from mailmarketer.signup.models_webinars import Event, Registration, Reminder
from mailmarketer.signup.testing_webinars import (
    BERLIN_START_UTC,
    body_of,
    invitation,
    make_event,
    make_form,
    register,
    utc_start,
    vevent,
)
from mailmarketer.testing import FORM_NOTICE

from .support import form_url, post, run_engine, sent_messages

pytestmark = pytest.mark.django_db

Status = Registration.Status


@pytest.fixture
def event(personas, staff):
    return make_event(personas.acme, staff)


@pytest.fixture
def form(event, staff):
    return make_form(event, staff)


def mails(workspace):
    run_engine()
    return sent_messages(workspace)


def mails_to(workspace, address):
    return [m for m in mails(workspace) if address in m["To"]]


def registration(email) -> Registration:
    return Registration.objects.get(subscriber__email=email)


def cancel_path(message) -> str:
    match = re.search(r"https?://[^/\s]+(/f/w/\S+)", body_of(message))
    assert match, body_of(message)
    return match.group(1)


# -- registering -------------------------------------------------------------------------------


def test_it_registers_with_a_consent_record_and_mails_an_invitation_at_the_right_instant(
    form, event, personas
):
    response = register(form, "ann@example.com")

    assert response.status_code == 200, response.content
    seat = registration("ann@example.com")
    assert seat.status == Status.REGISTERED
    assert seat.name == "Ann"
    record = ConsentRecord.objects.get(purpose=f"webinar:{event.pk}")
    assert record.subscriber == seat.subscriber
    assert record.notice.sha256 == ConsentNotice.hash_text(FORM_NOTICE)
    [message] = mails_to(personas.acme, "ann@example.com")
    # The typed name waits; the mail carries the staff's words and the address only.
    assert "Ann" not in message["To"]
    body = body_of(message)
    assert "Roasting {{ beans }} live" in message["Subject"]
    assert "https://meet.example.com/roast?room=7" in body
    assert "2031-01-14 15:00 (Europe/Berlin)" in body
    calendar = invitation(message)
    assert calendar["method"] == "REQUEST"
    entry = vevent(calendar)
    assert utc_start(calendar) == BERLIN_START_UTC
    assert entry.decoded("dtend").astimezone(UTC) == BERLIN_START_UTC + timedelta(minutes=45)
    assert entry["dtstart"].params["TZID"] == "Europe/Berlin"
    assert int(entry["sequence"]) == 0
    assert str(entry["uid"]) == f"{seat.uuid}@testserver"
    assert str(entry["location"]) == "https://meet.example.com/roast?room=7"
    assert AuditEvent.objects.filter(event="webinar.registered").count() == 1


def test_it_registers_through_the_hosted_page_and_subscribes_only_to_ticked_lists(
    event, staff, news, personas
):
    form = make_form(event, staff, lists=[news], slug="roast-news", list_mode="choice")
    response = post(form, {"email": "bo@example.com", "name": "Bo", "consent": "1"})

    assert response.status_code == 200, response.content
    assert "Thank you for registering" in response.content.decode()
    assert registration("bo@example.com").status == Status.REGISTERED
    assert not Subscription.objects.filter(subscriber__email="bo@example.com").exists()

    post(form, {"email": "cy@example.com", "consent": "1", "lists": str(news.pk)})
    assert Subscription.objects.filter(subscriber__email="cy@example.com").count() == 1


def test_it_never_shows_the_join_url_on_the_public_page(form):
    page = Client().get(form_url(form)).content.decode()

    assert "Roasting {{ beans }} live" in page
    assert "2031-01-14 15:00 (Europe/Berlin)" in page
    assert "meet.example.com" not in page


def test_it_keeps_one_place_for_a_person_registering_twice(form, personas):
    register(form, "ann@example.com")
    second = register(form, "ann@example.com")

    assert second.status_code == 200
    assert Registration.objects.count() == 1
    assert len(mails(personas.acme)) == 1


def test_it_puts_people_on_the_waiting_list_when_seats_are_taken(form, personas):
    register(form, "a@example.com")
    register(form, "b@example.com")
    register(form, "c@example.com")

    assert registration("c@example.com").status == Status.WAITLISTED
    [message] = mails_to(personas.acme, "c@example.com")
    assert "waiting list" in message["Subject"]
    assert "meet.example.com" not in body_of(message)
    assert invitation(message) is None
    # Nobody on the waiting list is reminded.
    assert not Reminder.objects.filter(registration__subscriber__email="c@example.com").exists()


def test_it_refuses_a_full_webinar_and_stores_nothing(form, personas):
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        register(form, address)
    submissions = Submission.objects.count()

    response = register(form, "d@example.com")

    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "event", "message": response.json()["message"]}]
    assert "full" in response.json()["message"]
    assert not Subscriber.objects.filter(email="d@example.com").exists()
    assert Submission.objects.count() == submissions
    page = post(form, {"email": "d@example.com", "consent": "1"})
    assert page.status_code == 422
    assert "This webinar is full" in page.content.decode()


def test_it_refuses_registration_once_closed_and_stores_nothing(event, form, staff):
    webinars.do_update_event(
        event, {"registration_closes_at": now() - timedelta(minutes=1)}, actor=staff
    )

    response = register(form, "late@example.com")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "event"
    assert "closed" in response.json()["message"]
    assert not Subscriber.objects.filter(email="late@example.com").exists()
    assert not Submission.objects.exists()
    assert (
        "Registration for this webinar is closed" in Client().get(form_url(form)).content.decode()
    )


def test_it_refuses_registration_for_a_cancelled_webinar(event, form, staff):
    webinars.do_cancel_event(event, actor=staff)

    response = register(form, "x@example.com")

    assert response.status_code == 422
    assert "cancelled" in response.json()["message"]
    assert not Registration.objects.exists()


# -- cancel link and waiting list --------------------------------------------------------------


def test_it_cancels_by_link_only_on_post_and_promotes_the_first_waiting(form, personas):
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        register(form, address)
    [first] = mails_to(personas.acme, "a@example.com")
    path = cancel_path(first)

    page = Client().get(path)
    assert page.status_code == 200
    assert "Cancel my registration" in page.content.decode()
    assert registration("a@example.com").status == Status.REGISTERED

    done = Client(enforce_csrf_checks=True).post(path)

    assert done.status_code == 200
    assert registration("a@example.com").status == Status.CANCELLED
    assert registration("c@example.com").status == Status.REGISTERED
    promoted = mails_to(personas.acme, "c@example.com")
    assert len(promoted) == 2  # the waiting-list mail, then the seat with its invitation
    calendar = invitation(promoted[-1])
    assert calendar["method"] == "REQUEST"
    assert utc_start(calendar) == BERLIN_START_UTC
    assert "meet.example.com" in body_of(promoted[-1])
    # The seat's reminders moved with it.
    assert Reminder.objects.filter(registration__subscriber__email="c@example.com").count() == 2
    assert not Reminder.objects.filter(registration__subscriber__email="a@example.com").exists()
    # The person who left gets a notice that removes the entry from their calendar: same
    # UID, a SEQUENCE above the invitation's.
    left = mails_to(personas.acme, "a@example.com")[-1]
    assert invitation(left)["method"] == "CANCEL"
    assert vevent(invitation(left))["uid"] == vevent(invitation(first))["uid"]
    assert int(vevent(invitation(left))["sequence"]) == 1
    # A second post changes nothing.
    Client().post(path)
    assert Registration.objects.filter(status=Status.REGISTERED).count() == 2


def test_it_gives_a_new_uid_and_link_to_someone_registering_again(form, personas):
    register(form, "a@example.com")
    [first] = mails_to(personas.acme, "a@example.com")
    old_link = cancel_path(first)
    Client().post(old_link)

    register(form, "a@example.com")

    again = mails_to(personas.acme, "a@example.com")[-1]
    assert registration("a@example.com").status == Status.REGISTERED
    assert vevent(invitation(again))["uid"] != vevent(invitation(first))["uid"]
    assert Client().post(old_link).status_code == 400
    assert registration("a@example.com").status == Status.REGISTERED


def test_it_refuses_forged_altered_and_expired_cancel_links(form, personas):
    register(form, "a@example.com")
    seat = registration("a@example.com")
    good = webinars.make_cancel_token(seat)
    forged = signing.TimestampSigner(salt="something else").sign(seat.uuid.hex)
    altered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")

    for token in (forged, altered, "nonsense", seat.uuid.hex):
        response = Client().post(f"/f/w/{token}")
        assert response.status_code == 400, token
        assert "not valid" in response.content.decode()

    later = datetime.now().timestamp() + (webinars.CANCEL_DAYS + 1) * 86400
    with mock.patch("django.core.signing.time.time", return_value=later):
        expired = Client().post(f"/f/w/{good}")
    assert expired.status_code == 400
    assert registration("a@example.com").status == Status.REGISTERED


# -- staff moving and cancelling -----------------------------------------------------------------


def test_it_mails_an_update_with_a_higher_sequence_when_the_event_moves(
    form, event, staff, personas
):
    register(form, "a@example.com")
    old_uid = str(vevent(invitation(mails(personas.acme)[0]))["uid"])
    moved_start = webinars.starts_at_from_local(datetime(2031, 7, 1, 9, 30), "America/New_York")

    webinars.do_update_event(
        event, {"starts_at": moved_start, "timezone": "America/New_York"}, actor=staff
    )

    event.refresh_from_db()
    assert event.sequence == 1
    update = mails_to(personas.acme, "a@example.com")[-1]
    assert "Changed" in update["Subject"]
    calendar = invitation(update)
    assert calendar["method"] == "REQUEST"
    entry = vevent(calendar)
    assert int(entry["sequence"]) == 1
    assert str(entry["uid"]) == old_uid
    # 09:30 in New York in July (EDT, UTC-4) is 13:30 UTC.
    assert utc_start(calendar) == datetime(2031, 7, 1, 13, 30, tzinfo=UTC)
    due = set(Reminder.objects.filter(sent_at__isnull=True).values_list("due_at", flat=True))
    assert due == {moved_start - timedelta(hours=24), moved_start - timedelta(hours=1)}


def test_it_mails_a_method_cancel_notice_when_staff_cancel(form, event, staff, personas):
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        register(form, address)

    webinars.do_cancel_event(event, actor=staff)

    event.refresh_from_db()
    assert event.status == Event.Status.CANCELLED
    assert event.sequence == 1
    seat = mails_to(personas.acme, "a@example.com")[-1]
    calendar = invitation(seat)
    assert calendar["method"] == "CANCEL"
    assert str(vevent(calendar)["status"]) == "CANCELLED"
    assert int(vevent(calendar)["sequence"]) == 1
    waiting = mails_to(personas.acme, "c@example.com")[-1]
    assert "Cancelled" in waiting["Subject"]
    assert invitation(waiting) is None
    assert not Reminder.objects.filter(sent_at__isnull=True).exists()


def test_it_promotes_from_the_waiting_list_when_staff_add_seats(form, event, staff, personas):
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        register(form, address)

    webinars.do_update_event(event, {"capacity": 3}, actor=staff)

    assert registration("c@example.com").status == Status.REGISTERED
    assert invitation(mails_to(personas.acme, "c@example.com")[-1])["method"] == "REQUEST"


def test_it_refuses_bad_event_settings_naming_the_field(personas, staff):
    for field, value in (
        ("timezone", "Mars/Olympus"),
        ("capacity", 0),
        ("join_url", "javascript:alert(1)"),
        ("reminder_offsets", [60, "soon"]),
        ("title", "  "),
    ):
        with pytest.raises(webinars.FormError) as caught:
            make_event(personas.acme, staff, **{field: value})
        assert caught.value.field == field
    assert not Event.objects.exists()


# -- reminders -----------------------------------------------------------------------------------


def test_it_registers_the_reminder_duty_with_the_worker():
    assert webinars.send_reminder_one in registered_duties()


def test_it_sends_each_reminder_once_at_its_offset(form, event, personas):
    register(form, "a@example.com")
    reminders = Reminder.objects.order_by("-offset_minutes")
    assert [r.offset_minutes for r in reminders] == [1440, 60]
    assert [r.due_at for r in reminders] == [
        BERLIN_START_UTC - timedelta(hours=24),
        BERLIN_START_UTC - timedelta(hours=1),
    ]
    assert webinars.send_reminder_one() is False  # nothing due yet

    day_before = BERLIN_START_UTC - timedelta(hours=23)
    with mock.patch("mailmarketer.signup.webinars.now", return_value=day_before):
        assert webinars.send_reminder_one() is True
        assert webinars.send_reminder_one() is False

    reminder = mails_to(personas.acme, "a@example.com")[-1]
    assert "Reminder" in reminder["Subject"]
    assert "meet.example.com" in body_of(reminder)
    assert Reminder.objects.filter(sent_at__isnull=False).count() == 1


def test_it_sends_a_reminder_once_when_two_workers_race_for_it(form, event, personas):
    register(form, "a@example.com")
    due_time = BERLIN_START_UTC - timedelta(hours=23)  # the day-before reminder is due
    sent_before = Campaign.objects.count()
    with mock.patch("mailmarketer.signup.webinars.now", return_value=due_time):
        first = webinars._due_reminder_id(due_time)
        # Both workers read the same due reminder before either claimed it.
        with mock.patch.object(webinars, "_due_reminder_id", return_value=first):
            assert webinars.send_reminder_one() is True
            assert webinars.send_reminder_one() is True

    assert Campaign.objects.count() == sent_before + 1
    assert Reminder.objects.get(pk=first).sent_at == due_time


def test_it_still_reminds_after_staff_retitle_the_event(form, event, staff, personas):
    register(form, "a@example.com")
    webinars.do_update_event(event, {"title": "Roasting, live"}, actor=staff)

    with mock.patch(
        "mailmarketer.signup.webinars.now", return_value=BERLIN_START_UTC - timedelta(minutes=59)
    ):
        while webinars.send_reminder_one():
            pass

    # Both were due (the day-before one late): only the latest goes, under the new title.
    assert Reminder.objects.filter(sent_at__isnull=False, skipped=False).count() == 1
    assert Reminder.objects.get(skipped=True).offset_minutes == 1440
    reminders = [m for m in mails_to(personas.acme, "a@example.com") if "Reminder" in m["Subject"]]
    assert len(reminders) == 1
    assert "Roasting, live" in reminders[0]["Subject"]


def test_it_skips_reminders_of_a_seat_given_up_or_an_event_started(form, event, personas):
    register(form, "a@example.com")
    register(form, "b@example.com")
    webinars.do_cancel_registration(registration("a@example.com"), actor=webinars.Actor.system())
    before = Campaign.objects.count()

    after_start = BERLIN_START_UTC + timedelta(minutes=5)
    with mock.patch("mailmarketer.signup.webinars.now", return_value=after_start):
        while webinars.send_reminder_one():
            pass

    assert Campaign.objects.count() == before
    assert Reminder.objects.filter(skipped=True).count() == 2  # b's two, past their time


def test_it_does_not_plan_reminders_already_past(personas, staff):
    event = make_event(personas.acme, staff, starts_at=now() + timedelta(minutes=30))
    form = make_form(event, staff)

    register(form, "a@example.com")

    assert not Reminder.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_sends_a_reminder_once_when_two_worker_threads_race_for_it(personas, staff):
    """Two workers, each with its own database connection, both read the same due reminder
    before either claims it (a barrier holds them there); only one claim changes the row."""
    import threading

    from django.db import connection

    event = make_event(personas.acme, staff)
    form = make_form(event, staff)
    register(form, "a@example.com", client=Client())
    due_time = BERLIN_START_UTC - timedelta(hours=23)  # the day-before reminder is due
    before = Campaign.objects.count()
    original = webinars._due_reminder_id
    barrier = threading.Barrier(2, timeout=20)
    results, failures = [], []

    def seen_by_both(stamp):
        found = original(stamp)
        barrier.wait()
        return found

    def worker():
        try:
            results.append(webinars.send_reminder_one())
        except Exception as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    with (
        mock.patch("mailmarketer.signup.webinars.now", return_value=due_time),
        mock.patch.object(webinars, "_due_reminder_id", side_effect=seen_by_both),
    ):
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    # On PostgreSQL the loser's UPDATE waits for the winner's row lock, then matches nothing.
    # Django's SQLite test database is an in-memory shared cache, where the loser is refused
    # with "table is locked" instead of waiting: its transaction rolls back whole, as a
    # worker's would (logged, retried next round). Either way one message, never two.
    assert all("locked" in str(exc) for exc in failures), failures
    assert len(results) + len(failures) == 2 and all(results) and results
    assert Campaign.objects.count() == before + 1
    assert Reminder.objects.filter(sent_at=due_time).count() == 1


# -- personal data -------------------------------------------------------------------------------


def test_it_exports_registrations_and_erases_them_with_the_invitation(form, staff, personas):
    from mailmarketer.audience import actions as audience
    from mailmarketer.campaigns.models import Attachment

    register(form, "zelda@example.com", name="Zelda")
    mails(personas.acme)
    zelda = Subscriber.objects.get(email="zelda@example.com")
    unfolded = bytes(Attachment.objects.get().data).replace(b"\r\n ", b"")
    assert b"mailto:zelda@example.com" in unfolded

    document = audience.do_export_personal_data(zelda, actor=staff)
    [row] = document["webinar_registrations"]
    assert (row["event__title"], row["status"], row["name"]) == (
        "Roasting {{ beans }} live",
        "registered",
        "Zelda",
    )

    audience.do_erase_subscriber(zelda, actor=staff)

    assert not Registration.objects.exists()
    assert not Reminder.objects.exists()
    assert not any(
        b"zelda" in bytes(a.data).replace(b"\r\n ", b"") for a in Attachment.objects.all()
    )


# -- facts for segments ------------------------------------------------------------------------


def test_it_records_a_seat_and_attendance_as_facts_and_takes_back_an_unmarked_one(
    event, staff, personas
):
    small = make_form(make_event(personas.acme, staff, capacity=1, waitlist_capacity=1), staff)
    assert register(small, "ann@example.com").status_code == 200
    assert register(small, "bo@example.com").status_code == 200  # the waiting list
    ann, bo = registration("ann@example.com"), registration("bo@example.com")
    key = f"event:{ann.event_id}"

    def facts_of(reg, kind):
        return Fact.objects.filter(subscriber=reg.subscriber, kind=kind, object_key=key)

    assert facts_of(ann, FactKind.REGISTERED).exists()
    assert not facts_of(bo, FactKind.REGISTERED).exists()  # waiting is not registered

    webinars.do_set_attendance(ann, True, actor=staff)
    assert facts_of(ann, FactKind.ATTENDED).get().count == 1
    webinars.do_set_attendance(ann, False, actor=staff)
    assert not facts_of(ann, FactKind.ATTENDED).exists()

    marked, _ = webinars.do_import_attendance(ann.event, b"email\nann@example.com\n", actor=staff)
    assert marked == 1 and facts_of(ann, FactKind.ATTENDED).exists()
