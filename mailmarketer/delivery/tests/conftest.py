import pytest
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import MailingList, Subscriber
from mailmarketer.campaigns.models import Campaign


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


def add_people(workspace, lists, count, staff, prefix="p", confirmed=None):
    people = []
    for i in range(count):
        sub = audience.do_create_subscriber(
            workspace, email=f"{prefix}{i}@example.com", name=f"Person {i}", actor=staff
        )
        audience.do_subscribe(sub, lists, actor=staff, reason=Reason.BY_ADMIN, confirmed=confirmed)
        people.append(sub)
    return people


def launch(workspace, lists, *, exclude=(), status=Campaign.Status.RUNNING, **fields):
    """A running campaign as do_start_campaign leaves it (launch snapshot taken now)."""
    campaign = Campaign.objects.create(
        workspace=workspace,
        name=fields.pop("name", "Autumn news"),
        subject=fields.pop("subject", "Hello {{ subscriber.first_name }}"),
        body=fields.pop("body", "Hi {{ subscriber.name }}, [read more](https://acme.test/a)."),
        status=status,
        started_at=now(),
        audience_max_id=Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first()
        or 0,
        **fields,
    )
    campaign.lists.set(lists)
    campaign.exclude_lists.set(exclude)
    return campaign
