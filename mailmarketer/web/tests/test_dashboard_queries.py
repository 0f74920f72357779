"""The dashboard's reads (web/queries.py): audience growth per day, audience size, campaigns with
their sent counts and people's opens and clicks, imports in progress and the getting-started
checklist; each inside one workspace, and a number of statements that does not grow with the
data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now

from mailmarketer.accounts.queries import get_membership
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import Import, Subscription
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery.models import Delivery, DkimKey
from mailmarketer.signup.actions import do_create_form
from mailmarketer.testing import SETUP, launch, ledger_rows, many_people, relay, url
from mailmarketer.tracking.models import CampaignStat, EmailEventKind, Grain
from mailmarketer.web import queries

TODAY = date(2026, 11, 30)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def subscribed_on(people, day: date):
    Subscription.objects.filter(subscriber__in=people).update(created_at=at(day))


def unsubscribed_on(people, day: date):
    for person in people:
        audience.do_unsubscribe(person, actor=SETUP, reason=Reason.BY_ADMIN)
    Subscription.objects.filter(subscriber__in=people).update(unsubscribed_at=at(day, 23))


def series(chart) -> dict[str, dict[date, int]]:
    """{series label: {day: value}} with the zero days left out."""
    days = [point.date() for point in chart.points]
    return {
        label: {day: v for day, v in zip(days, values, strict=True) if v}
        for label, values in chart.series.items()
    }


def test_it_counts_new_and_unsubscribed_subscriptions_per_day(ws, news, personas):
    other = audience.do_create_list(ws, name="Offers", slug="offers", actor=SETUP)
    early = many_people(ws, [news], 3, prefix="early")
    late = many_people(ws, [news, other], 2, prefix="late")  # two lists: two subscriptions
    subscribed_on(early, TODAY - timedelta(days=10))
    subscribed_on(late, TODAY)
    unsubscribed_on(early[:1], TODAY - timedelta(days=2))
    # Before the span, and in another workspace: not counted.
    old = many_people(ws, [news], 1, prefix="old")
    subscribed_on(old, TODAY - timedelta(days=30))
    evil_list = audience.do_create_list(personas.evil, name="E", slug="e", actor=SETUP)
    subscribed_on(many_people(personas.evil, [evil_list], 4, prefix="evil"), TODAY)

    chart = queries.audience_growth(ws, 30, today=TODAY)

    assert len(chart.points) == 30
    assert chart.points[0] == at(TODAY - timedelta(days=29), 0)
    assert chart.points[-1] == at(TODAY, 0)
    assert series(chart) == {
        "New": {TODAY - timedelta(days=10): 3, TODAY: 4},
        "Unsubscribed": {TODAY - timedelta(days=2): 1},
        "Net": {TODAY - timedelta(days=10): 3, TODAY - timedelta(days=2): -1, TODAY: 4},
    }
    assert all(row["grain"] == "day" for row in chart.rows)


def test_it_reaches_back_ninety_days_when_asked(ws, news):
    subscribed_on(many_people(ws, [news], 2), TODAY - timedelta(days=60))
    assert series(queries.audience_growth(ws, 30, today=TODAY))["New"] == {}
    ninety = queries.audience_growth(ws, 90, today=TODAY)
    assert len(ninety.points) == 90
    assert series(ninety)["New"] == {TODAY - timedelta(days=60): 2}


def test_it_refuses_a_span_it_does_not_offer(ws):
    with pytest.raises(ValueError, match="days must be one of"):
        queries.audience_growth(ws, 7)


def test_it_counts_the_audience(ws, news, personas):
    other = audience.do_create_list(ws, name="Offers", slug="offers", actor=SETUP)
    both = many_people(ws, [news, other], 2, prefix="both")
    gone = many_people(ws, [news], 1, prefix="gone")
    unsubscribed_on(gone, TODAY)
    audience.do_create_subscriber(ws, email="nolist@example.com", actor=SETUP)
    evil_list = audience.do_create_list(personas.evil, name="E", slug="e", actor=SETUP)
    many_people(personas.evil, [evil_list], 3, prefix="evil")

    assert queries.audience_size(ws) == {"people": 4, "subscribed": 2, "subscriptions": 4}
    assert both


def unstarted(workspace, lists, name, status=Campaign.Status.DRAFT, **fields):
    campaign = launch(workspace, lists, name=name, status=status, **fields)
    Campaign.objects.filter(pk=campaign.pk).update(started_at=None)
    campaign.refresh_from_db()
    return campaign


def stat(campaign, kind, uniques, *, machine=False, link_id=0, grain=Grain.DAY, day=TODAY):
    CampaignStat.objects.create(
        workspace=campaign.workspace,
        campaign_id=campaign.pk,
        grain=grain,
        bucket=at(day, 0),
        link_id=link_id,
        kind=kind,
        machine=machine,
        total=uniques * 2,
        uniques=uniques,
    )


def test_it_lists_recent_and_scheduled_campaigns_with_sent_opens_and_clicks(ws, news, personas):
    people = many_people(ws, [news], 4)
    first = launch(ws, [news], name="First", status=Campaign.Status.FINISHED)
    Campaign.objects.filter(pk=first.pk).update(started_at=now() - timedelta(days=3))
    second = launch(ws, [news], name="Second")
    ledger_rows(first, people, ["sent", "sent", "bounced", "failed"])
    ledger_rows(second, people[:2], ["sent", "queued"])
    stat(first, EmailEventKind.OPEN, 2)
    stat(first, EmailEventKind.OPEN, 1, day=TODAY - timedelta(days=1))
    stat(first, EmailEventKind.CLICK, 1)
    stat(first, EmailEventKind.OPEN, 9, machine=True)  # a privacy proxy: not people
    stat(first, EmailEventKind.CLICK, 5, link_id=7)  # per link: already in the campaign's own
    stat(first, EmailEventKind.OPEN, 4, grain=Grain.HOUR)  # hourly: the same opens again
    later = unstarted(ws, [news], "Later", Campaign.Status.SCHEDULED)
    sooner = unstarted(ws, [news], "Sooner", Campaign.Status.SCHEDULED)
    Campaign.objects.filter(pk=later.pk).update(scheduled_at=now() + timedelta(days=2))
    Campaign.objects.filter(pk=sooner.pk).update(scheduled_at=now() + timedelta(days=1))
    unstarted(ws, [news], "A draft")
    launch(ws, [news], name="Receipt", kind=Campaign.Kind.TRANSACTIONAL)
    launch(personas.evil, [], name="Evil")

    overview = queries.campaign_overview(ws, with_activity=True)

    recent = [(c.name, c.sent, c.total, c.opens, c.clicks) for c in overview["recent"]]
    assert recent == [("Second", 1, 2, 0, 0), ("First", 3, 4, 3, 1)]
    assert [c.name for c in overview["scheduled"]] == ["Sooner", "Later"]
    assert Delivery.objects.filter(campaign=first).count() == 4


def test_it_reads_campaigns_in_the_same_number_of_statements_however_many(ws, news):
    def statements() -> int:
        with CaptureQueriesContext(connection) as ctx:
            queries.campaign_overview(ws, with_activity=True)
        return len(ctx.captured_queries)

    people = many_people(ws, [news], 2)
    one = launch(ws, [news], name="One")
    ledger_rows(one, people, ["sent", "sent"])
    few = statements()
    for i in range(4):
        campaign = launch(ws, [news], name=f"More {i}")
        ledger_rows(campaign, people, ["sent", "failed"])
        stat(campaign, EmailEventKind.OPEN, 1)
    assert statements() == few == 4


def test_it_lists_imports_in_progress_only(ws, personas):
    def make(name, status, workspace=ws):
        return Import.objects.create(
            workspace=workspace,
            original_name=name,
            encoding="utf-8",
            delimiter=",",
            status=status,
        )

    make("mapping.csv", Import.Status.DRAFT)
    make("queued.csv", Import.Status.QUEUED)
    make("running.csv", Import.Status.RUNNING)
    make("done.csv", Import.Status.FINISHED)
    make("failed.csv", Import.Status.FAILED)
    make("evil.csv", Import.Status.RUNNING, workspace=personas.evil)

    names = {imp.original_name for imp in queries.imports_in_progress(ws)}
    assert names == {"mapping.csv", "queued.csv", "running.csv"}


def checklist(request_for) -> dict[str, bool]:
    return {step.key: step.done for step in queries.getting_started(request_for)}


class FakeRequest:
    def __init__(self, workspace, membership):
        self.workspace = workspace
        self.membership = membership


def test_it_ticks_each_getting_started_step_as_it_is_done(personas, django_assert_num_queries):
    acme = personas.acme
    acme.sender_email = ""
    acme.save()
    membership = get_membership(personas.alice, "acme")
    request = FakeRequest(acme, membership)
    with django_assert_num_queries(1):
        steps = queries.getting_started(request)
    assert [s.key for s in steps] == [
        "postal_address",
        "sender",
        "relay",
        "dkim",
        "list",
        "form",
        "campaign",
    ]
    assert not any(s.done for s in steps)
    assert all(s.url for s in steps)

    acme.postal_address = "1 Main Street"
    acme.sender_email = "news@acme.test"
    acme.save()
    relay(acme)
    DkimKey.objects.create(
        workspace=acme, domain="acme.test", selector="s1", private_key="x", public_key="y"
    )
    news = audience.do_create_list(acme, name="News", slug="news", actor=SETUP)
    assert checklist(request) == {
        "postal_address": True,
        "sender": True,
        "relay": True,
        "dkim": True,
        "list": True,
        "form": False,
        "campaign": False,
    }
    do_create_form(
        acme, name="F", slug="f", title="F", lists=[news], notice_text="Yes.", actor=SETUP
    )
    unstarted(acme, [news], "Draft only")
    assert checklist(request)["form"] is True
    assert checklist(request)["campaign"] is False  # a draft is not a campaign sent
    launch(acme, [news], name="Sent")
    assert all(checklist(request).values())
    # Another workspace's progress is its own.
    evil = FakeRequest(personas.evil, get_membership(personas.mallory, "evil"))
    assert not any(checklist(evil).values())


def test_it_links_a_step_only_for_a_member_who_may_open_its_page(personas):
    carol = get_membership(personas.carol, "acme")  # an analyst
    urls = {s.key: s.url for s in queries.getting_started(FakeRequest(personas.acme, carol))}
    assert urls["postal_address"] is None
    assert urls["relay"] is None
    assert urls["campaign"] == url("campaigns-home")
