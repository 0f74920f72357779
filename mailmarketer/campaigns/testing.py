"""Fixtures of the campaign write tests, the content side (campaigns/tests/test_actions.py)
and the sending side (delivery/tests/test_campaign_actions.py): acme with a postal address,
bob the marketer as actor, a list and a draft with two links. A test module imports them
(`from mailmarketer.campaigns.testing import acme, bob, draft, news`); they stand in for the
shared ones of the same names."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience

from . import actions

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


@pytest.fixture
def bob(personas):
    return Actor.for_user(personas.bob)


@pytest.fixture
def acme(personas):
    workspace = personas.acme
    workspace.postal_address = "1 Main Street, Springfield"
    workspace.save()
    return workspace


@pytest.fixture
def news(acme, bob):
    return audience.do_create_list(acme, name="News", slug="news", actor=bob)


@pytest.fixture
def draft(acme, news, bob):
    return actions.do_create_campaign(
        acme,
        actor=bob,
        name="Autumn",
        subject="Hello {{ subscriber.first_name }}",
        body="Read [the post](https://acme.test/post) and [more](https://acme.test/more).",
        lists=[news],
    )


def events(name):
    return list(AuditEvent.objects.filter(event=name))
