"""/api/v1/events: webinars and their registrants, by role, masked without personal data."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.signup.models_webinars import Event, Registration
from mailmarketer.signup.testing_webinars import make_event, make_form, register
from mailmarketer.testing import SETUP

pytestmark = pytest.mark.django_db

BODY = {
    "title": "Roasting live",
    "starts_at": "2031-01-14T15:00:00+01:00",
    "timezone": "Europe/Berlin",
    "duration_minutes": 45,
    "join_url": "https://meet.example.com/r",
    "capacity": 1,
    "waitlist_capacity": 5,
}


@pytest.fixture
def event(personas):
    return make_event(personas.acme, SETUP, capacity=1, waitlist_capacity=5)


def test_it_creates_moves_and_cancels_an_event(tokens, as_token):
    client = as_token(tokens.marketer.raw)
    created = client.request("POST", "/api/v1/events", BODY)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["starts_at"].startswith("2031-01-14T14:00:00")
    assert (body["sequence"], body["status"], body["reminder_offsets"]) == (
        0,
        "scheduled",
        [1440, 60],
    )

    moved = client.patch(f"/api/v1/events/{body['id']}", {"starts_at": "2031-01-15T09:00:00Z"})
    assert moved.status_code == 200, moved.content
    assert moved.json()["sequence"] == 1

    cancelled = client.request("POST", f"/api/v1/events/{body['id']}/cancel")
    assert (cancelled.json()["status"], cancelled.json()["sequence"]) == ("cancelled", 2)
    again = client.patch(f"/api/v1/events/{body['id']}", {"capacity": 9})
    assert again.status_code == 409
    assert AuditEvent.objects.filter(event__startswith="webinar.").count() == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"starts_at": "2031-01-14T15:00:00"}, "starts_at"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"capacity": 0}, "capacity"),
        ({"join_url": "ftp://x.test/"}, "join_url"),
        ({"reminder_offsets": [0]}, "reminder_offsets"),
        ({"starts_at": "9999-12-31T23:59:59-12:00"}, "starts_at"),
        ({"registration_closes_at": "0001-01-01T00:00:00+14:00"}, "registration_closes_at"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_it_names_the_field_it_refuses(tokens, as_token, change, field):
    response = as_token(tokens.owner.raw).request("POST", "/api/v1/events", {**BODY, **change})
    assert response.status_code == 422, response.content
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not Event.objects.exists()


def test_it_makes_a_webinar_form_for_an_event_through_the_forms_api(tokens, as_token, event):
    body = {
        "name": "W",
        "slug": "w",
        "kind": "webinar",
        "title": "Register",
        "notice_text": "Yes.",
        "event": event.pk,
    }
    response = as_token(tokens.owner.raw).request("POST", "/api/v1/forms", body)
    assert response.status_code == 201, response.content
    assert (response.json()["kind"], response.json()["event"]) == ("webinar", event.pk)


def test_it_lets_the_analyst_read_but_not_write(tokens, as_token, event):
    client = as_token(tokens.analyst.raw)
    assert client.get("/api/v1/events").status_code == 200
    assert client.get(f"/api/v1/events/{event.pk}/registrants").status_code == 200
    assert client.request("POST", "/api/v1/events", BODY).status_code == 403
    assert client.patch(f"/api/v1/events/{event.pk}", {"capacity": 5}).status_code == 403
    assert client.request("POST", f"/api/v1/events/{event.pk}/cancel").status_code == 403
    assert Event.objects.get().status == "scheduled"


def test_it_shows_mallory_none_of_acmes_events(tokens, as_token, event):
    client = as_token(tokens.mallory.raw)
    assert client.get("/api/v1/events").json() == {"events": []}
    assert client.get(f"/api/v1/events/{event.pk}").status_code == 404
    assert client.get(f"/api/v1/events/{event.pk}/registrants").status_code == 404
    assert client.request("POST", f"/api/v1/events/{event.pk}/cancel").status_code == 404
    assert Event.objects.get().status == "scheduled"


def test_it_pages_registrants_and_masks_them_without_personal_data(tokens, as_token, event):
    form = make_form(event, SETUP)
    for n in range(3):
        assert register(form, f"p{n}@example.com", name=f"P{n}").status_code == 200
    owner = as_token(tokens.owner.raw)
    url = f"/api/v1/events/{event.pk}/registrants"

    first = owner.get(f"{url}?limit=2").json()
    assert [(r["email"], r["status"]) for r in first["registrants"]] == [
        ("p0@example.com", "registered"),
        ("p1@example.com", "waitlisted"),
    ]
    second = owner.get(f"{url}?limit=2&cursor={first['next_cursor']}").json()
    assert [r["email"] for r in second["registrants"]] == ["p2@example.com"]
    assert second["next_cursor"] is None
    assert AuditEvent.objects.filter(event="subscriber.listed").count() == 2
    waiting = owner.get(f"{url}?status=waitlisted").json()["registrants"]
    assert len(waiting) == 2
    assert owner.get(f"{url}?cursor=forged").json()["errors"][0]["field"] == "cursor"

    masked = as_token(tokens.analyst.raw).get(url).json()["registrants"]
    assert [r["email"] for r in masked] == ["p•••@example.com"] * 3
    assert {r["name"] for r in masked} == {None}
    assert Registration.objects.count() == 3
