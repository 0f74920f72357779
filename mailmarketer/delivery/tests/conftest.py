import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import MailingList


@pytest.fixture
def staff(personas):
    return Actor.for_user(personas.alice)


@pytest.fixture
def news(personas, staff):
    return audience.do_create_list(personas.acme, name="News", slug="news", actor=staff)


@pytest.fixture
def double(personas, staff):
    return audience.do_create_list(
        personas.acme, name="Double", slug="double", optin=MailingList.OptIn.DOUBLE, actor=staff
    )
