"""The staff's webinar pages under /app/<ws>/events/: who may see and change what, attendance
by hand and from a CSV, the export (audited, masked without personal data), and the builder
making a webinar form."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.accounts.permissions import Role
from mailmarketer.signup.models import Form
from mailmarketer.signup.models_webinars import Event, Registration
from mailmarketer.signup.testing_webinars import BERLIN_START_UTC, make_event, make_form, register
from mailmarketer.testing import FORM_NOTICE, client_for, make_member, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(personas, staff):
    return make_event(personas.acme, staff)


@pytest.fixture
def registered(event, staff):
    form = make_form(event, staff)
    for address in ("ann@example.com", "bo@example.com", "cy@example.com"):
        register(form, address, name=address.split("@")[0].title())
    return form


def base(event) -> str:
    return f"/app/acme/events/{event.pk}/"


EVENT_POST = {
    "title": "Cupping",
    "description": "",
    "start": "2031-03-02T10:00",
    "timezone": "Europe/Berlin",
    "duration_minutes": "30",
    "join_url": "https://meet.example.com/c",
    "capacity": "10",
    "waitlist_capacity": "0",
    "closes": "",
    "reminders": "1440, 60",
    "language": "en",
}


def test_it_lets_the_marketer_create_an_event_in_its_zone(bob_client):
    response = bob_client.post("/app/acme/events/new/", EVENT_POST)

    assert response.status_code == 302, response.content
    event = Event.objects.get()
    # 10:00 in Berlin in March (CET) is 09:00 UTC.
    assert event.starts_at.isoformat() == "2031-03-02T09:00:00+00:00"
    assert event.reminder_offsets == [1440, 60]


def test_it_names_the_field_it_refuses_on_the_event_page(bob_client):
    response = bob_client.post("/app/acme/events/new/", {**EVENT_POST, "reminders": "0"})

    assert response.status_code == 400
    assert "whole number of minutes" in response.content.decode()
    assert not Event.objects.exists()


def test_it_lets_the_analyst_look_but_not_change(carol_client, event, registered):
    assert carol_client.get("/app/acme/events/").status_code == 200
    page = carol_client.get(base(event))
    assert page.status_code == 200
    # Masked: no address, no name.
    assert "a•••@example.com" in page.content.decode()
    assert "ann@example.com" not in page.content.decode()
    assert carol_client.get("/app/acme/events/new/").status_code == 403
    assert carol_client.post(base(event) + "cancel/").status_code == 403
    assert carol_client.get(base(event) + "export.csv").status_code == 403
    assert Event.objects.get().status == Event.Status.SCHEDULED


def test_it_shows_mallory_nothing_of_acme(mallory_client, event):
    assert mallory_client.get(base(event)).status_code in (403, 404)
    assert mallory_client.post(base(event) + "cancel/").status_code in (403, 404)
    assert mallory_client.get("/app/evil/events/").content.decode().count(event.title) == 0
    assert mallory_client.get(f"/app/evil/events/{event.pk}/").status_code == 404
    assert Event.objects.get().status == Event.Status.SCHEDULED


def test_it_shows_registrants_and_the_waiting_list_unmasked_with_an_audit_row(
    bob_client, event, registered
):
    page = bob_client.get(base(event)).content.decode()

    assert "ann@example.com" in page and "bo@example.com" in page
    assert "Waiting list (1)" in page and "cy@example.com" in page
    assert AuditEvent.objects.filter(event="subscriber.listed").count() == 1


def test_it_marks_attendance_by_hand(bob_client, event, registered):
    seat = Registration.objects.get(subscriber__email="ann@example.com")

    response = bob_client.post(base(event) + f"attendance/{seat.pk}/", {"attended": "1"})

    assert response.status_code == 302
    seat.refresh_from_db()
    assert seat.attended is True


def test_it_imports_attendance_from_a_csv_and_reports_bad_lines(bob_client, event, registered):
    csv = b"email\nANN@example.com\nnot an address\nstranger@example.com\n\ncy@example.com\n"
    upload = SimpleUploadedFile("attended.csv", csv, content_type="text/csv")

    response = bob_client.post(base(event) + "attendance/import/", {"file": upload})

    assert response.status_code == 302
    attended = set(
        Registration.objects.filter(attended=True).values_list("subscriber__email", flat=True)
    )
    assert attended == {"ann@example.com", "cy@example.com"}
    page = bob_client.get(base(event)).content.decode()
    assert "line 3: not an email address" in page
    assert "line 4: not registered for this webinar" in page


def test_it_refuses_an_attendance_file_that_is_not_text(bob_client, event, registered):
    upload = SimpleUploadedFile("x.csv", b"ann@example.com\x00\xff", content_type="text/csv")

    bob_client.post(base(event) + "attendance/import/", {"file": upload})

    assert not Registration.objects.filter(attended=True).exists()


def test_it_exports_registrants_audited(bob_client, event, registered):
    response = bob_client.get(base(event) + "export.csv")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    lines = response.content.decode().splitlines()
    assert lines[0] == "email,name,status,registered_at,attended"
    assert lines[1].startswith("ann@example.com,Ann,registered,")
    assert AuditEvent.objects.filter(event="webinar.exported").count() == 1


def test_it_masks_the_export_without_the_personal_data_permission(personas, event, registered):
    # A role with the export permission but not personal data: an admin-made custom role is
    # not in the catalogue, so take away the permission for this one request.
    dan = make_user("dan@acme.test")
    make_member(personas.acme, dan, Role.MARKETER)
    from mailmarketer.accounts import permissions as p

    marketer = p.ROLE_PERMISSIONS[Role.MARKETER]
    try:
        p.ROLE_PERMISSIONS[Role.MARKETER] = marketer - {p.VIEW_PERSONAL_DATA}
        response = client_for(dan).get(base(event) + "export.csv")
    finally:
        p.ROLE_PERMISSIONS[Role.MARKETER] = marketer

    body = response.content.decode()
    assert response.status_code == 200
    assert "ann@example.com" not in body and "a•••@example.com,," in body
    audit = AuditEvent.objects.get(event="webinar.exported")
    assert audit.new["masked"] is True


def test_it_cancels_the_event_from_its_page(bob_client, event, registered):
    response = bob_client.post(base(event) + "cancel/")

    assert response.status_code == 302
    assert Event.objects.get().status == Event.Status.CANCELLED


def test_it_moves_the_event_from_its_page(bob_client, event, registered):
    response = bob_client.post(
        base(event) + "edit/",
        {**EVENT_POST, "title": event.title, "capacity": "2", "waitlist_capacity": "1"},
    )

    assert response.status_code == 302, response.content
    event.refresh_from_db()
    assert event.sequence == 1
    assert event.starts_at != BERLIN_START_UTC


def test_it_builds_a_webinar_form_in_the_builder(bob_client, event):
    response = bob_client.post(
        "/app/acme/forms/new/",
        {
            "name": "Roast",
            "slug": "roast",
            "kind": "webinar",
            "event": str(event.pk),
            "title": "Register",
            "language": "en",
            "list_mode": "fixed",
            "notice_text": FORM_NOTICE,
            "builtin_name": "optional",
            **{
                f"builtin_{k}": "off"
                for k in ("first_name", "last_name", "company", "job_title", "phone", "country")
            },
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    form = Form.objects.get()
    assert (form.kind, form.webinar.event) == ("webinar", event)


def test_it_lets_staff_cancel_one_registration_freeing_the_seat_audited(
    bob_client, personas, event, registered
):
    seat = Registration.objects.get(subscriber__email="ann@example.com")
    assert "Cancel registration" in bob_client.get(base(event)).content.decode()

    response = bob_client.post(base(event) + f"registrations/{seat.pk}/cancel/")

    assert response.status_code == 302
    seat.refresh_from_db()
    assert seat.status == Registration.Status.CANCELLED
    # The first on the waiting list has the seat now.
    waiting = Registration.objects.get(subscriber__email="cy@example.com")
    assert waiting.status == Registration.Status.REGISTERED
    (row,) = AuditEvent.objects.filter(event="webinar.registration_cancelled")
    assert row.actor_user == personas.bob
    assert row.new == {"subscriber": str(seat.subscriber.uuid), "had_seat": True}
    # Twice is once.
    bob_client.post(base(event) + f"registrations/{seat.pk}/cancel/")
    assert AuditEvent.objects.filter(event="webinar.registration_cancelled").count() == 1


def test_it_lets_neither_the_analyst_nor_another_workspace_cancel_a_registration(
    carol_client, mallory_client, event, registered
):
    seat = Registration.objects.get(subscriber__email="ann@example.com")
    assert "Cancel registration" not in carol_client.get(base(event)).content.decode()
    assert carol_client.post(base(event) + f"registrations/{seat.pk}/cancel/").status_code == 403
    path = f"/app/evil/events/{event.pk}/registrations/{seat.pk}/cancel/"
    assert mallory_client.post(path).status_code == 404
    assert mallory_client.post(base(event) + f"registrations/{seat.pk}/cancel/").status_code in (
        403,
        404,
    )
    seat.refresh_from_db()
    assert seat.status == Registration.Status.REGISTERED
