"""First and last names: the name shown made from them (or kept whole), on the pages and in the
actions; masked like the name for roles that do not see personal data."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailmarketer.accounts.actions import ActionError
from mailmarketer.audience import actions
from mailmarketer.audience.models import Subscriber, display_name

pytestmark = pytest.mark.django_db


def url(name, **kwargs):
    return reverse(name, kwargs={"ws": "acme", **kwargs})


def test_the_name_shown_is_made_from_first_and_last_name():
    assert display_name(" Ann ", "Berg") == "Ann Berg"
    assert display_name("", "Berg", "Dr. A. Berg") == "Berg"
    assert display_name("", "", "Dr. A. Berg") == "Dr. A. Berg"


def test_it_creates_a_subscriber_with_first_and_last_name(personas, staff):
    sub = actions.do_create_subscriber(
        personas.acme, email="ann@example.com", first_name="Ann", last_name="Berg", actor=staff
    )
    assert (sub.first_name, sub.last_name, sub.name) == ("Ann", "Berg", "Ann Berg")
    whole = actions.do_create_subscriber(
        personas.acme, email="dr@example.com", name="Dr. Ann Berg", first_name="Ann", actor=staff
    )
    assert (whole.first_name, whole.name) == ("Ann", "Dr. Ann Berg")


def test_it_makes_the_name_anew_when_first_or_last_name_change(personas, staff):
    sub = actions.do_create_subscriber(
        personas.acme, email="ann@example.com", first_name="Ann", last_name="Berg", actor=staff
    )
    actions.do_update_subscriber(sub, last_name="Lind", actor=staff)
    sub.refresh_from_db()
    assert (sub.first_name, sub.last_name, sub.name) == ("Ann", "Lind", "Ann Lind")


def test_it_refuses_a_first_name_with_a_line_break(personas, staff):
    with pytest.raises(ActionError, match="first name"):
        actions.do_create_subscriber(
            personas.acme, email="ann@example.com", first_name="Ann\nBcc: x@evil", actor=staff
        )
    assert not Subscriber.objects.exists()


def test_the_add_form_takes_first_and_last_name(bob_client, personas):
    response = bob_client.post(
        url("audience-subscriber-create"),
        {"add-email": "ann@example.com", "add-first_name": "Ann", "add-last_name": "Berg"},
    )
    assert response.status_code == 302
    sub = Subscriber.objects.get(workspace=personas.acme)
    assert (sub.first_name, sub.last_name, sub.name) == ("Ann", "Berg", "Ann Berg")


def test_the_profile_shows_and_edits_first_and_last_name(bob_client, personas, staff):
    sub = actions.do_create_subscriber(
        personas.acme, email="ann@example.com", first_name="Ann", last_name="Berg", actor=staff
    )
    page = bob_client.get(url("audience-subscriber", sid=str(sub.uuid))).content.decode()
    assert "First name" in page and 'value="Berg"' in page

    response = bob_client.post(
        url("audience-subscriber-profile", sid=str(sub.uuid)),
        {
            "profile-email": sub.email,
            "profile-first_name": "Anna",
            "profile-last_name": "Berg",
            "profile-name": "Ann Berg",  # as it was: made from the names, so it follows them
        },
    )
    assert response.status_code == 302
    sub.refresh_from_db()
    assert (sub.first_name, sub.name) == ("Anna", "Anna Berg")

    bob_client.post(
        url("audience-subscriber-profile", sid=str(sub.uuid)),
        {
            "profile-email": sub.email,
            "profile-first_name": "Anna",
            "profile-last_name": "Berg",
            "profile-name": "Dr. Anna Berg",
        },
    )
    sub.refresh_from_db()
    assert sub.name == "Dr. Anna Berg"


def test_a_role_without_personal_data_sees_the_names_hidden(carol_client, personas, staff):
    sub = actions.do_create_subscriber(
        personas.acme, email="ann@example.com", first_name="Annika", last_name="Berg", actor=staff
    )
    page = carol_client.get(url("audience-subscriber", sid=str(sub.uuid))).content.decode()
    assert "Annika" not in page
