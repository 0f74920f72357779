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


def cards(response) -> dict[str, str]:
    """{label: count} of the dashboard's cards."""
    return dict(
        (label, count)
        for count, label in re.findall(
            r'<span class="count">([^<]+)</span> <span class="label">([^<]+)</span>',
            response.content.decode(),
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
