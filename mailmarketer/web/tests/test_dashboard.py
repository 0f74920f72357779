"""The dashboard and the navigation: real counts, each card and section only for roles that may
follow it, nothing of another workspace."""

from __future__ import annotations

import re

import pytest
from django.urls import NoReverseMatch, reverse

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.permissions import Role, permissions_for
from mailmarketer.lib import outbox
from mailmarketer.web.nav import SECTIONS

DASHBOARD = reverse("app-dashboard", kwargs={"ws": "acme"})


def cards(response, name="Counts") -> dict[str, str]:
    """{label: count} of one group of the dashboard's cards (the admin counts by default)."""
    group = re.search(
        rf'<ul class="cards" aria-label="{name}">.*?</ul>', response.content.decode(), re.S
    ).group(0)
    return dict(
        (label, count)
        for count, label in re.findall(
            r'<span class="count">([^<]+)</span> <span class="label">([^<]+)</span>', group
        )
    )


def nav_links(response) -> list[str]:
    html = response.content.decode()
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', html, re.S).group(0)
    return re.findall(r'<a href="([^"]+)"', nav)


def test_it_shows_real_counts(alice_client, personas):
    alice = Actor.for_user(personas.alice)
    actions.do_create_api_token(personas.acme, name="a", role=Role.MARKETER, actor=alice)
    revoked, _ = actions.do_create_api_token(
        personas.acme, name="b", role=Role.ANALYST, actor=alice
    )
    actions.do_revoke_api_token(revoked, actor=alice)
    actions.do_create_api_token(
        personas.evil, name="c", role=Role.OWNER, actor=Actor.for_user(personas.mallory)
    )
    acme_mail = b"To: x@acme.test\r\nSubject: hi\r\n\r\nbody\r\n"
    outbox.write_message(acme_mail, outbox.workspace_scope(personas.acme.pk))
    # Mail of another workspace, and system mail to someone else, are not counted.
    outbox.write_message(acme_mail, outbox.workspace_scope(personas.evil.pk))
    outbox.write_message(b"To: bob@acme.test\r\nSubject: reset\r\n\r\nbody\r\n")

    response = alice_client.get(DASHBOARD)
    assert response.status_code == 200
    assert cards(response) == {
        "team members": "3",
        "active API tokens": "1",
        "audit events in 7 days": "3",  # two tokens created, one revoked
        "messages in the outbox": "1",
    }
    html = response.content.decode()
    for name in ("team", "tokens", "audit", "outbox"):
        assert f'href="{reverse(name, kwargs={"ws": "acme"})}"' in html


def test_it_shows_an_analyst_only_what_the_role_may_follow(carol_client):
    response = carol_client.get(DASHBOARD)
    assert response.status_code == 200
    assert cards(response) == {"team members": "3"}
    html = response.content.decode()
    assert 'href="/app/acme/team/"' in html
    for name in ("tokens", "audit", "outbox", "settings-workspace"):
        assert reverse(name, kwargs={"ws": "acme"}) not in html


def test_it_hides_another_workspaces_dashboard(mallory_client):
    response = mallory_client.get(DASHBOARD)
    assert response.status_code == 404
    assert b"Acme" not in response.content
    own = mallory_client.get(reverse("app-dashboard", kwargs={"ws": "evil"}))
    assert own.status_code == 200
    assert cards(own)["team members"] == "1"
    assert b"/app/acme/" not in own.content


def expected_nav(role: str, ws: str = "acme") -> list[str]:
    urls = []
    for section in SECTIONS:
        try:
            url = reverse(section.url_name, kwargs={"ws": ws})
        except NoReverseMatch:
            continue
        if section.permission in permissions_for(role):
            urls.append(url)
    return urls


@pytest.mark.parametrize(
    ("client_name", "role"),
    [("alice_client", Role.OWNER), ("bob_client", Role.MARKETER), ("carol_client", Role.ANALYST)],
)
def test_it_shows_only_the_sections_that_exist_and_the_role_may_see(client_name, role, request):
    client = request.getfixturevalue(client_name)
    assert nav_links(client.get(DASHBOARD)) == expected_nav(role)


def test_it_names_the_sections_built_so_far(alice_client, carol_client):
    owner = nav_links(alice_client.get(DASHBOARD))
    assert "/app/acme/" in owner
    assert "/app/acme/outbox/" in owner
    assert "/app/acme/settings/" in owner
    analyst = nav_links(carol_client.get(DASHBOARD))
    assert "/app/acme/" in analyst
    assert "/app/acme/outbox/" not in analyst
    assert "/app/acme/settings/" not in analyst


def test_it_marks_the_current_section(alice_client):
    html = alice_client.get("/app/acme/outbox/").content.decode()
    assert '<a href="/app/acme/outbox/" aria-current="page">Outbox</a>' in html


# -- the marketer's part: audience, growth chart, campaigns, imports, the checklist


def chart_rows(html: str, chart_id: str) -> list[list[str]]:
    figure = re.search(
        rf'<figure class="chart" aria-labelledby="{chart_id}-title">.*?</figure>', html, re.S
    ).group(0)
    body = re.search(r"<tbody>(.*?)</tbody>", figure, re.S).group(1)
    return [
        re.findall(r"<t[hd][^>]*>(?:<time[^>]*>)?([^<]*)", row)
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_it_shows_the_audience_and_its_growth_to_a_marketer(bob_client, ws, news):
    from datetime import UTC, datetime

    from mailmarketer.testing import many_people

    many_people(ws, [news], 3)
    response = bob_client.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert cards(response, "Audience") == {
        "subscribed people": "3",
        "list subscriptions": "3",
        "people in total": "3",
    }
    rows = chart_rows(html, "growth-30")
    assert len(rows) == 30
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert rows[-1] == [today, "3", "0", "3"]
    assert 'id="growth-30-data"' in html  # the numbers chart.js draws
    assert "uplot.iife.min.js" in html
    assert '<a href="?days=30#audience-heading" aria-current="true">30 days</a>' in html

    ninety = bob_client.get(DASHBOARD + "?days=90").content.decode()
    assert len(chart_rows(ninety, "growth-90")) == 90
    assert '<a href="?days=90#audience-heading" aria-current="true">90 days</a>' in ninety


def test_it_refuses_a_period_it_does_not_offer(bob_client):
    response = bob_client.get(DASHBOARD + "?days=7")
    assert response.status_code == 400
    assert response.content.decode() == "days must be 30 or 90, not '7'"


def test_it_puts_the_marketers_part_above_the_admin_cards(alice_client):
    html = alice_client.get(DASHBOARD).content.decode()
    order = [
        html.index(f'id="{h}"')
        for h in ("start-heading", "audience-heading", "campaigns-heading", "admin-heading")
    ]
    assert order == sorted(order)


def test_it_shows_imports_in_progress_to_whoever_may_import(bob_client, carol_client, personas):
    from mailmarketer.audience.models import Import

    imp = Import.objects.create(
        workspace=personas.acme,
        original_name="winter.csv",
        encoding="utf-8",
        delimiter=",",
        status=Import.Status.RUNNING,
        rows_total=1000,
        rows_done=250,
    )
    html = bob_client.get(DASHBOARD).content.decode()
    assert f'href="/app/acme/audience/imports/{imp.pk}/">winter.csv</a>' in html
    assert "250 of about 1,000 rows" in html
    assert "winter.csv" not in carol_client.get(DASHBOARD).content.decode()


def test_it_hides_the_checklist_when_every_step_is_done(alice_client, ws, news):
    from mailmarketer.delivery.models import DkimKey
    from mailmarketer.signup.actions import do_create_form
    from mailmarketer.testing import SETUP, launch, relay

    assert 'id="getting-started"' in alice_client.get(DASHBOARD).content.decode()
    relay(ws)
    DkimKey.objects.create(
        workspace=ws, domain="acme.test", selector="s1", private_key="x", public_key="y"
    )
    do_create_form(ws, name="F", slug="f", title="F", lists=[news], notice_text="Y.", actor=SETUP)
    html = alice_client.get(DASHBOARD).content.decode()
    assert "6 of 7 done" in html
    assert '<a href="/app/acme/campaigns/">Send your first campaign</a>' in html
    launch(ws, [news])
    assert 'id="getting-started"' not in alice_client.get(DASHBOARD).content.decode()


def test_it_reads_the_dashboard_in_a_number_of_statements_that_does_not_grow(
    alice_client, ws, news
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailmarketer.testing import launch, ledger_rows, many_people

    def statements() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert alice_client.get(DASHBOARD).status_code == 200
        return len(ctx.captured_queries)

    people = many_people(ws, [news], 2)
    ledger_rows(launch(ws, [news], name="One"), people, ["sent", "sent"])
    few = statements()
    people += many_people(ws, [news], 5, prefix="more")
    for i in range(4):
        ledger_rows(launch(ws, [news], name=f"More {i}"), people[:2], ["sent", "failed"])
    assert statements() == few
