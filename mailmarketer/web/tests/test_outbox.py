"""The Outbox pages: list, message detail, and the sandboxed HTML preview."""

from __future__ import annotations

import re

import pytest
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent, Workspace
from mailmarketer.accounts.permissions import ROLE_PERMISSIONS, Role
from mailmarketer.lib import outbox
from mailmarketer.lib.outbox import OutboxBackend

LIST = reverse("outbox", kwargs={"ws": "acme"})


def store(
    subject="Hello",
    to="dave@acme.test",
    text="Plain words",
    html="<p>Rich words</p>",
    workspace="acme",
):
    message = EmailMultiAlternatives(subject, text, "noreply@testserver", [to])
    if html is not None:
        message.attach_alternative(html, "text/html")
    if workspace is not None:
        ws_id = Workspace.objects.get(slug=workspace).pk
        message.outbox_scope = outbox.workspace_scope(ws_id)
    OutboxBackend().send_messages([message])
    entries, _ = outbox.list_messages(limit=1)
    return entries[0].id


def detail_url(message_id, ws="acme"):
    return f"/app/{ws}/outbox/{message_id}/"


def html_url(message_id, ws="acme"):
    return f"/app/{ws}/outbox/{message_id}/html"


def test_it_lists_messages_newest_first(alice_client):
    first = store(subject="First", to="one@acme.test")
    second = store(subject="Second", to="two@acme.test")
    response = alice_client.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("Second") < html.index("First")
    assert "two@acme.test" in html
    assert f'href="{detail_url(second)}"' in html
    assert f'href="{detail_url(first)}"' in html
    assert re.search(r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</time>", html)
    assert "sent on behalf of this workspace" in html
    assert "Only owners and admins can read it" in html


def test_it_says_when_the_outbox_is_empty(alice_client):
    assert b"The outbox is empty." in alice_client.get(LIST).content


def test_it_pages_the_list(alice_client):
    for i in range(53):
        store(subject=f"Message {i:02d}")
    first = alice_client.get(LIST).content.decode()
    assert first.count('href="/app/acme/outbox/2') == 50
    assert 'href="?page=2" rel="next"' in first
    second = alice_client.get(LIST, {"page": "2"}).content.decode()
    assert second.count('href="/app/acme/outbox/2') == 3
    assert "Message 00" in second
    assert 'href="?page=1" rel="prev"' in second
    assert alice_client.get(LIST, {"page": "3"}).status_code == 404
    bad = alice_client.get(LIST, {"page": "abc"})
    assert bad.status_code == 400
    assert b"Page must be a whole number from 1, not &#x27;abc&#x27;" in bad.content


def test_it_shows_a_message_with_headers_escaped(alice_client):
    message_id = store(subject="<script>alert(1)</script> offer", text="Line one\n<b>not bold</b>")
    response = alice_client.get(detail_url(message_id))
    assert response.status_code == 200
    html = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; offer" in html
    assert "<script>alert" not in html
    assert "<pre>Line one\n&lt;b&gt;not bold&lt;/b&gt;" in html
    assert '<th scope="row">To</th><td>dave@acme.test</td>' in html
    assert '<th scope="row">Message-ID</th>' in html
    assert '<th scope="row">Subject</th>' in html
    iframe = re.search(r"<iframe[^>]*>", html).group(0)
    # Same origin (so frame.js can size it to the message), never scripts.
    assert 'sandbox="allow-same-origin"' in iframe
    assert "data-fit-frame" in iframe
    assert "web/frame.js" in html
    assert f'src="{html_url(message_id)}"' in iframe
    assert "title=" in iframe


def test_it_serves_the_html_part_sandboxed(alice_client):
    message_id = store(html='<p>Rich</p><script>parent.document.title="owned"</script>')
    response = alice_client.get(html_url(message_id))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"<p>Rich</p>" in response.content
    csp = response["Content-Security-Policy"]
    directives = [d.strip() for d in csp.split(";")]
    assert directives[0] == "sandbox allow-same-origin"
    assert not any("script" in d for d in directives)
    assert "default-src 'none'" in directives
    assert "img-src data: https: http://testserver/i/" in directives
    assert "style-src 'unsafe-inline'" in directives
    assert "frame-ancestors 'self'" in directives
    assert "frame-ancestors 'none'" not in csp
    assert not any(d.startswith("script-src") for d in directives)
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response["Cache-Control"]


def test_a_look_at_the_html_part_does_not_count_as_an_open(alice_client):
    pixel = '<img src="http://testserver/t/o/4.eNjU3baHuU9POFi0" width="1" height="1" alt="">'
    picture = '<img src="http://testserver/i/acme/ab12.png" alt="Our roast">'
    message_id = store(html=f"<p>Rich</p>{picture}{pixel}</body>")
    body = alice_client.get(html_url(message_id)).content.decode()
    assert "/t/o/" not in body
    assert picture in body and "<p>Rich</p>" in body


def test_it_keeps_the_strict_policy_on_the_other_pages(alice_client):
    message_id = store()
    for url in (LIST, detail_url(message_id)):
        response = alice_client.get(url)
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert response["X-Frame-Options"] == "DENY"


def test_it_has_no_preview_for_a_text_only_message(alice_client):
    message_id = store(html=None)
    page = alice_client.get(detail_url(message_id)).content.decode()
    assert "<iframe" not in page
    assert "<pre>Plain words" in page
    assert alice_client.get(html_url(message_id)).status_code == 404


@pytest.mark.parametrize(
    "bad_id",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "..%2Fsecret",
        "..",
        ".hidden",
        "20260101T000000.000000-deadbeef",  # the right shape, but no such message
        "x%00y",
        "%2E%2E",
    ],
)
def test_it_finds_nothing_outside_the_outbox(alice_client, _outbox_dir, bad_id):
    store()
    (_outbox_dir.parent / "secret.eml").write_text("Subject: secret\n\nthe password is hunter2\n")
    (_outbox_dir / ".hidden.eml").write_text("Subject: hidden\n\nhunter2\n")
    for url in (detail_url(bad_id), html_url(bad_id)):
        response = alice_client.get(url)
        assert response.status_code == 404, url
        assert b"hunter2" not in response.content


@pytest.mark.parametrize("client_name", ["bob_client", "carol_client"])
def test_it_forbids_the_outbox_to_marketers_and_analysts(client_name, request, personas):
    client = request.getfixturevalue(client_name)
    message_id = store(subject="Reset your password")
    for url in (LIST, detail_url(message_id), html_url(message_id)):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Reset your password" not in response.content
        assert b"Rich words" not in response.content


def test_it_hides_acme_outbox_urls_from_another_workspace(mallory_client):
    message_id = store(subject="Acme invitation")
    for url in (LIST, detail_url(message_id), html_url(message_id)):
        response = mallory_client.get(url)
        assert response.status_code == 404, url
        assert b"Acme invitation" not in response.content
        assert b"Rich words" not in response.content


def test_it_shows_each_workspace_only_its_own_mail(alice_client, mallory_client):
    acme_message = store(subject="Acme invitation", workspace="acme")
    evil_message = store(subject="Evil invitation", to="x@evil.test", workspace="evil")
    acme_page = alice_client.get(LIST).content.decode()
    assert "Acme invitation" in acme_page and "Evil invitation" not in acme_page
    evil_page = mallory_client.get("/app/evil/outbox/").content.decode()
    assert "Evil invitation" in evil_page and "Acme invitation" not in evil_page
    assert mallory_client.get(detail_url(acme_message, ws="evil")).status_code == 404
    assert mallory_client.get(html_url(acme_message, ws="evil")).status_code == 404
    assert alice_client.get(detail_url(evil_message)).status_code == 404


def test_it_shows_system_mail_only_to_its_recipient(alice_client, personas):
    own = store(subject="Reset Alice", to="alice@acme.test", workspace=None)
    other = store(subject="Reset Bob", to="bob@acme.test", workspace=None)
    page = alice_client.get(LIST).content.decode()
    assert "Reset Alice" in page and "Reset Bob" not in page
    assert alice_client.get(detail_url(own)).status_code == 200
    assert alice_client.get(detail_url(other)).status_code == 404


def test_it_writes_one_audit_row_per_look_at_the_outbox(alice_client):
    message_id = store(subject="Your receipt", to="dave@acme.test")
    assert alice_client.get(LIST).status_code == 200
    assert alice_client.get(detail_url(message_id)).status_code == 200
    assert alice_client.get(html_url(message_id)).status_code == 200
    rows = list(AuditEvent.objects.filter(event__startswith="outbox.").order_by("id"))
    assert [(r.event, r.object_id, r.new) for r in rows] == [
        ("outbox.listed", "", {"count": 1}),
        ("outbox.viewed", message_id, {"part": "message"}),
        ("outbox.viewed", message_id, {"part": "html"}),
    ]
    assert all(r.actor_user.email == "alice@acme.test" and r.workspace.slug == "acme" for r in rows)
    # The audit log names the message by id only, never its recipient or subject.
    assert not any(
        "dave@" in f"{r.object_repr} {r.new}" or "receipt" in r.object_repr for r in rows
    )


def test_it_writes_no_audit_row_for_a_message_not_found(alice_client):
    assert alice_client.get(detail_url("20260101T000000.000000-0000abcd")).status_code == 404
    assert not AuditEvent.objects.filter(event__startswith="outbox.").exists()


def test_it_shows_the_outbox_only_with_permission_to_see_personal_data(alice_client, monkeypatch):
    # No shipped role reads the outbox without seeing personal data; make one to prove the
    # second permission is needed: messages name their recipients and carry transactional data.
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.OWNER, ROLE_PERMISSIONS[Role.OWNER] - {p.VIEW_PERSONAL_DATA}
    )
    message_id = store(subject="Your receipt", to="dave@acme.test")
    for url in (LIST, detail_url(message_id), html_url(message_id)):
        response = alice_client.get(url)
        assert response.status_code == 403, url
        assert b"dave@acme.test" not in response.content and b"receipt" not in response.content
        assert b"audience.view_personal_data" in response.content
    assert not AuditEvent.objects.filter(event__startswith="outbox.").exists()
