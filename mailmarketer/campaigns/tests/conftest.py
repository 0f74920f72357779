"""Fixtures of the campaign page tests (test_views_*.py): acme ready to send (a postal address,
a time zone that is not UTC), a list with people on it, a draft, and a campaign of evil's.
Test modules that define fixtures of the same names keep their own."""

from __future__ import annotations

import pytest

from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns import actions

from .view_data import SETUP


@pytest.fixture
def ws(personas):
    """acme, ready to send: a postal address, and a time zone that is not UTC."""
    workspace = personas.acme
    workspace.postal_address = "1 Main Street, Springfield"
    workspace.timezone = "Europe/Berlin"
    workspace.save()
    return workspace


@pytest.fixture
def news(ws):
    return audience.do_create_list(ws, name="News", slug="news", actor=SETUP)


@pytest.fixture
def people(ws, news):
    found = []
    for i in range(3):
        person = audience.do_create_subscriber(
            ws, email=f"person{i}@example.com", name=f"Person {i}", actor=SETUP
        )
        audience.do_subscribe(person, [news], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
        found.append(person)
    return found


@pytest.fixture
def draft(ws, news):
    return actions.do_create_campaign(
        ws,
        actor=SETUP,
        name="Autumn news",
        subject="Hello {{ subscriber.first_name }}",
        body="Read [the post](https://acme.test/post).",
        lists=[news],
    )


@pytest.fixture
def evil_draft(personas):
    return actions.do_create_campaign(
        personas.evil, actor=SETUP, name="Evil plan", subject="Hi", body="Evil"
    )
