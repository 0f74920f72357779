"""Test support shared by the packages' tests, in one module (the personas themselves are
fixtures in mailmarketer/conftest.py, built with the helpers here): staff users and members,
logged-in clients, a page in Debian's Chromium, URLs of the staff pages, audit rows, a campaign
launched without a worker, ledger rows in chosen statuses without running the engine, and the
fixtures of the campaign pages, whose content tests live in campaigns and whose sending tests in
delivery. Tests import helpers from here, never from another test module or a conftest.

It sits at the root of the package, beside conftest.py and above every layer of the import
contract, because setting up a test may need any package (a content test needs a launched
campaign to prove that it can no longer be edited). No product code imports it."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.actions import do_create_api_token
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent, Membership, User, Workspace
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions
from mailmarketer.delivery.models import Delivery, SmtpServer

SETUP = Actor.system("test setup")


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_user(email: str, name: str = "", password: str | None = None) -> User:
    return User.objects.create_user(email=email, name=name, password=password)


def make_member(workspace: Workspace, user: User, role: str) -> Membership:
    return Membership.objects.create(workspace=workspace, user=user, role=role)


def client_for(user) -> Client:
    """A test client logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client


@contextmanager
def chromium_page():
    """A fresh page in Debian's Chromium, and the list its console errors are collected in.

    Django's ORM is used only outside this block: inside it, Playwright's greenlets give the
    ORM a different context, and a connection opened there would outlive the test (on
    PostgreSQL it then blocks dropping the test database)."""
    if shutil.which(CHROMIUM) is None:
        reason = f"{CHROMIUM} is missing: install Debian's chromium package to run browser tests"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: a missing browser is a failure)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM (used by the live
    # server fixtures and the test's asserts) refuses to run where a loop is running unless told.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def url(name, ws="acme", **kwargs):
    return reverse(name, kwargs={"ws": ws, **kwargs})


def events(name, **filters):
    return list(AuditEvent.objects.filter(event=name, **filters).order_by("id"))


def launched(campaign, **fields) -> Campaign:
    """The campaign as launching leaves it (status running, snapshot taken), without a worker."""
    campaign_actions.do_start_campaign(campaign, actor=SETUP)
    if fields:
        Campaign.objects.filter(pk=campaign.pk).update(**fields)
    campaign.refresh_from_db()
    return campaign


def ledger_rows(campaign, people, statuses, **fields) -> list[Delivery]:
    """One ledger row per person, with the given statuses (sent rows sent a few seconds ago)."""
    rows = []
    for person, status in zip(people, statuses, strict=True):
        sent = status in (Delivery.Status.SENT, Delivery.Status.BOUNCED)
        rows.append(
            Delivery.objects.create(
                workspace=campaign.workspace,
                campaign=campaign,
                subscriber=person,
                status=status,
                attempts=1 if status != Delivery.Status.QUEUED else 0,
                sent_at=now() - timedelta(seconds=5) if sent else None,
                **fields,
            )
        )
    return rows


def many_people(workspace, lists, count, prefix="m"):
    found = []
    for i in range(count):
        person = audience.do_create_subscriber(
            workspace, email=f"{prefix}{i}@example.com", actor=SETUP
        )
        audience.do_subscribe(person, lists, actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
        found.append(person)
    return found


def relay(workspace, name="Main relay") -> SmtpServer:
    return SmtpServer.objects.create(workspace=workspace, name=name, host="smtp.acme.test")


# -- fixtures of the campaign pages (conftest.py of campaigns/tests and delivery/tests/pages
# import them): acme ready to send, a list with people on it, a draft, and a campaign of evil's.


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


# -- the delivery engine's tests: people and a campaign launched as do_start_campaign leaves it


def add_people(workspace, lists, count, staff, prefix="p", confirmed=None):
    """`count` people subscribed to `lists` by `staff`, addressed <prefix><i>@example.com."""
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


def make_token(workspace, role, name=None):
    """An API token of `role` in `workspace`, made by the operator: `.token` and its `.raw`."""
    token, raw = do_create_api_token(
        workspace, name=name or f"{role} token", role=role, actor=Actor.system()
    )
    return SimpleNamespace(token=token, raw=raw)


# -- sign-up forms: the consent notice the form tests show

FORM_NOTICE = (
    "I agree that Acme may email me its newsletter.\n"
    "I can unsubscribe at any time with the link in every message — see acme.test/privacy."
)
