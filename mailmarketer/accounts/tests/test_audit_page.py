"""The audit log page: filters, keyset pages of 50, captured text escaped, one workspace only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from mailmarketer.accounts import actions
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent, Membership
from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import make_member, make_user

AUDIT = reverse("audit", kwargs={"ws": "acme"})


def event(ws, name, at, label="alice@acme.test", **fields):
    return AuditEvent.objects.create(workspace=ws, event=name, at=at, actor_label=label, **fields)


def shown(response) -> list[str]:
    """The object column of each row, in page order."""
    html = response.content.decode()
    body = html[html.index("<tbody>") : html.index("</tbody>")] if "<tbody>" in html else ""
    return re.findall(r'<span class="muted">thing</span> (n\d+)', body)


def test_it_lists_events_with_actor_object_ip_and_changes(alice_client, personas):
    bob = Membership.objects.get(workspace=personas.acme, user=personas.bob)
    actions.do_change_role(bob, Role.ADMIN, actor=Actor.for_user(personas.alice, "203.0.113.9"))
    response = alice_client.get(AUDIT)
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(
        r"<tr>\s*<td><time[^<]*</time></td>\s*<td>alice@acme.test</td>.*?</tr>", html, re.S
    )
    assert row, html
    row = row.group(0)
    assert '<code class="event-name">member.role_changed</code>' in row
    assert "bob@acme.test" in row
    assert f"#{personas.bob.pk}" in row
    assert "203.0.113.9" in row
    # A change reads as its fields, not as JSON.
    assert '<span class="change-field">role</span>: <del>marketer</del> → <ins>admin</ins>' in row


def test_it_escapes_what_an_attacker_typed_at_sign_in(alice_client, personas):
    # A quoted local part makes this a valid address, so a member can have it; a failed sign-in
    # aimed at it records what was typed, which then reaches the page.
    typed = '"<script>alert(1)</script>"@acme.test'
    member = make_user(typed)
    make_member(personas.acme, member, Role.ANALYST)
    actions.record_login_failed(typed, ip="198.51.100.7", reason="<img src=x onerror=alert(2)>")
    actions.audit(
        "workspace.updated",
        actor=Actor.for_user(personas.alice),
        workspace=personas.acme,
        obj=personas.acme,
        old={"name": "Acme"},
        new={"name": "</code><script>alert(3)</script>"},
    )
    html = alice_client.get(AUDIT).content.decode()
    assert "auth.login_failed" in html
    assert "198.51.100.7" in html
    assert "&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;@acme.test" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;/code&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "<img src=x" not in html


def test_it_shows_failed_sign_ins_only_for_the_workspace_members(alice_client, personas):
    actions.record_login_failed("alice@acme.test", ip="198.51.100.1", reason="bad password")
    actions.record_login_failed("<script>x</script>", ip="198.51.100.2", reason="no such user")
    actions.record_login_failed("mallory@evil.test", ip="198.51.100.3", reason="bad password")
    html = alice_client.get(AUDIT).content.decode()
    assert "198.51.100.1" in html
    assert "198.51.100.2" not in html
    assert "198.51.100.3" not in html
    assert "&lt;script&gt;x" not in html


def test_it_filters_by_event_family_event_and_actor(alice_client, personas):
    now = datetime.now(UTC)
    event(personas.acme, "member.invited", now, object_type="thing", object_repr="n1")
    event(personas.acme, "member.removed", now, object_type="thing", object_repr="n2")
    event(
        personas.acme, "token.created", now, "bob@acme.test", object_type="thing", object_repr="n3"
    )
    event(personas.evil, "evil.secret", now, "mallory@evil.test")

    page = alice_client.get(AUDIT).content.decode()
    select = re.search(r'<select name="event".*?</select>', page, re.S).group(0)
    assert '<option value="member.">member.* (all member events)</option>' in select
    assert '<option value="member.invited">member.invited</option>' in select
    assert '<option value="token.created">token.created</option>' in select
    assert "evil" not in select

    assert sorted(shown(alice_client.get(AUDIT, {"event": "member."}))) == ["n1", "n2"]
    assert shown(alice_client.get(AUDIT, {"event": "member.removed"})) == ["n2"]
    assert shown(alice_client.get(AUDIT, {"actor": "BOB@"})) == ["n3"]
    both = alice_client.get(AUDIT, {"event": "member.", "actor": "bob"})
    assert shown(both) == []
    assert b"No events match these filters." in both.content


def test_it_filters_by_days_in_the_workspace_time_zone(alice_client, personas):
    personas.acme.timezone = "America/New_York"  # UTC-5 in January
    personas.acme.save()
    # 2026-01-10 03:00 UTC is still 9 January in New York
    event(
        personas.acme,
        "x.a",
        datetime(2026, 1, 10, 3, tzinfo=UTC),
        object_type="thing",
        object_repr="n1",
    )
    event(
        personas.acme,
        "x.a",
        datetime(2026, 1, 10, 6, tzinfo=UTC),
        object_type="thing",
        object_repr="n2",
    )
    event(
        personas.acme,
        "x.a",
        datetime(2026, 1, 11, 4, 59, tzinfo=UTC),
        object_type="thing",
        object_repr="n3",
    )
    event(
        personas.acme,
        "x.a",
        datetime(2026, 1, 11, 5, tzinfo=UTC),
        object_type="thing",
        object_repr="n4",
    )
    response = alice_client.get(AUDIT, {"since": "2026-01-10", "until": "2026-01-10"})
    assert response.status_code == 200
    assert shown(response) == ["n3", "n2"]
    assert shown(alice_client.get(AUDIT, {"until": "2026-01-09"})) == ["n1"]
    assert shown(alice_client.get(AUDIT, {"since": "2026-01-11"})) == ["n4"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"event": "nosuch."},
            "Select a valid choice. nosuch. is not one of the available choices.",
        ),
        ({"since": "yesterday"}, "Enter a valid date."),
        (
            {"since": "2026-02-02", "until": "2026-02-01"},
            "The “To” date is before the “From” date.",
        ),
        ({"after": "abc"}, "&#x27;after&#x27; must be a whole number"),
        ({"before": "-1"}, "&#x27;before&#x27; must be a whole number"),
    ],
)
def test_it_names_what_is_wrong_with_bad_filters(alice_client, personas, params, message):
    event(personas.acme, "x.a", datetime.now(UTC))
    response = alice_client.get(AUDIT, params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_it_pages_fifty_events_at_a_time_newest_first(alice_client, personas):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(120):
        # Pairs share a timestamp, so the page edges must break ties by id.
        event(
            personas.acme,
            "x.a",
            start + timedelta(minutes=i // 2),
            object_type="thing",
            object_repr=f"n{i}",
        )
    expected = [f"n{i}" for i in reversed(range(120))]

    first = alice_client.get(AUDIT, {"event": "x."})
    assert shown(first) == expected[:50]
    html = first.content.decode()
    assert "Newer" not in html
    older = re.search(r'<a href="\?([^"]+)" rel="next">Older</a>', html).group(1)
    assert "event=x." in older

    second = alice_client.get(AUDIT + "?" + older.replace("&amp;", "&"))
    assert shown(second) == expected[50:100]
    html = second.content.decode()
    newer = re.search(r'<a href="\?([^"]+)" rel="prev">Newer</a>', html).group(1)
    older = re.search(r'<a href="\?([^"]+)" rel="next">Older</a>', html).group(1)

    third = alice_client.get(AUDIT + "?" + older.replace("&amp;", "&"))
    assert shown(third) == expected[100:]
    assert 'rel="next"' not in third.content.decode()

    back = alice_client.get(AUDIT + "?" + newer.replace("&amp;", "&"))
    assert shown(back) == expected[:50]


@pytest.mark.parametrize("client_name", ["bob_client", "carol_client"])
def test_it_forbids_the_audit_log_to_marketers_and_analysts(client_name, request, personas):
    client = request.getfixturevalue(client_name)
    event(personas.acme, "member.invited", datetime.now(UTC), object_repr="secret-invitee")
    response = client.get(AUDIT)
    assert response.status_code == 403
    assert b"secret-invitee" not in response.content


def test_it_shows_another_workspace_nothing(mallory_client, personas):
    acme_event = event(
        personas.acme, "member.invited", datetime.now(UTC), object_repr="acme-invitee"
    )
    actions.record_login(personas.alice, ip="192.0.2.44")
    response = mallory_client.get(AUDIT)
    assert response.status_code == 404
    assert b"acme-invitee" not in response.content

    own = mallory_client.get(reverse("audit", kwargs={"ws": "evil"}))
    assert own.status_code == 200
    assert b"acme-invitee" not in own.content
    assert b"192.0.2.44" not in own.content
    assert b"member.invited" not in own.content  # not even in the event filter
    # an acme event id as the page anchor in her own workspace finds nothing
    for cursor in ("after", "before"):
        anchored = mallory_client.get(
            reverse("audit", kwargs={"ws": "evil"}), {cursor: acme_event.pk}
        )
        assert anchored.status_code == 400
        assert b"not in this audit log" in anchored.content
        assert b"acme-invitee" not in anchored.content
