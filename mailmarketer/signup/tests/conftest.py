import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns.models import Campaign
from mailmarketer.testing import FORM_NOTICE as NOTICE


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


@pytest.fixture(autouse=True)
def _own_signup_spool(settings, tmp_path):
    """Each test its own spool directory, no spool file left open, and this process's form
    cache and flood memory empty (ids and addresses come back between tests)."""
    from mailmarketer.signup import queries_submit, spooled

    spooled.spool.close()
    spooled.memory.forget()
    queries_submit.forget_forms()
    settings.TRACKING_SPOOL_DIR = tmp_path / "spool"
    yield
    spooled.spool.close()
    spooled.memory.forget()
    queries_submit.forget_forms()


# -- forms -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_engine():
    from mailmarketer.delivery import engine

    engine.reset_state()
    yield
    engine.reset_state()


@pytest.fixture
def weekly(personas, staff):
    """A double opt-in list."""
    return actions.do_create_list(
        personas.acme, name="Weekly", slug="weekly", optin="double", actor=staff
    )


@pytest.fixture
def newsletter(personas, staff, news, weekly):
    """A newsletter form subscribing to News (single opt-in) and Weekly (double opt-in)."""
    from mailmarketer.signup.actions import do_create_form

    return do_create_form(
        personas.acme,
        name="Newsletter",
        slug="newsletter",
        title="Get our newsletter",
        intro="Once a week.",
        fields=[
            {"key": "first_name", "type": "builtin"},
            {"key": "company", "type": "builtin", "required": True},
            {"key": "employees", "type": "number"},
            {"key": "founded", "type": "date"},
            {"key": "topic", "type": "choice", "choices": ["Coffee", "Tea"]},
            {"key": "vip", "type": "checkbox"},
        ],
        allowed_origins=["http://127.0.0.1:9999"],
        lists=[news, weekly],
        notice_text=NOTICE,
        actor=staff,
    )
