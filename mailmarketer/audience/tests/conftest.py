import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions
from mailmarketer.audience.models import MailingList


@pytest.fixture
def staff(personas):
    return Actor.for_user(personas.alice, "192.0.2.10")


@pytest.fixture
def news(personas, staff):
    return actions.do_create_list(personas.acme, name="News", slug="news", actor=staff)


@pytest.fixture
def webinars(personas, staff):
    return actions.do_create_list(
        personas.acme,
        name="Webinars",
        slug="webinars",
        optin=MailingList.OptIn.DOUBLE,
        actor=staff,
    )
