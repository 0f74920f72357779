import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns.models import Campaign


@pytest.fixture
def staff(personas):
    return Actor.for_user(personas.alice, "192.0.2.10")


@pytest.fixture
def news(personas, staff):
    return actions.do_create_list(personas.acme, name="News", slug="news", actor=staff)


@pytest.fixture
def offers(personas, staff):
    return actions.do_create_list(personas.acme, name="Offers", slug="offers", actor=staff)


@pytest.fixture
def ann(personas, staff, news, offers):
    """On both of acme's lists, confirmed."""
    subscriber = actions.do_create_subscriber(
        personas.acme, email="ann.example@example.com", actor=staff
    )
    actions.do_subscribe(subscriber, [news, offers], actor=staff, reason=Reason.BY_ADMIN)
    return subscriber


@pytest.fixture
def campaign(personas, news):
    """A campaign to acme's News list only (campaigns has no actions yet to make one)."""
    campaign = Campaign.objects.create(workspace=personas.acme, name="April", subject="Hello")
    campaign.lists.add(news)
    return campaign
