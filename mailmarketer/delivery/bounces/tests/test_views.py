import pytest
from django.test import Client

from mailmarketer.accounts.permissions import Role
from mailmarketer.delivery.bounces import testing
from mailmarketer.delivery.bounces.apply import do_process_bounce
from mailmarketer.delivery.bounces.models import Bounce
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import client_for, events, launch, ledger_rows, make_member, make_user

EVIL_TEXT = '<script>alert("x")</script>'


@pytest.fixture
def bounce(ws, news, people):
    row = ledger_rows(launch(ws, [news]), people[:1], [Delivery.Status.SENT])[0]
    raw = testing.dsn(
        row.subscriber.email,
        token=testing.token_for(row),
        diagnostic="550 5.1.1 {address} " + EVIL_TEXT,
    )
    return do_process_bounce(raw, channel=Bounce.Channel.SMTP)


def test_it_lists_reports_with_their_outcome_for_the_owner_unmasked_and_audited(
    alice_client, bounce
):
    response = alice_client.get("/app/acme/bounces/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "person0@example.com" in html and "Hard bounce" in html and "Autumn news" in html
    assert EVIL_TEXT not in html
    assert events("subscriber.listed")


def test_it_shows_one_report_escaped_with_its_ledger_row(alice_client, bounce):
    html = alice_client.get(f"/app/acme/bounces/{bounce.pk}/").content.decode()
    assert "Final-Recipient: rfc822; person0@example.com" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert EVIL_TEXT not in html
    assert "Bounced" in html  # the ledger row's status now
    assert events("bounce.viewed")


def test_it_masks_addresses_for_an_analyst_and_keeps_our_return_path(carol_client, bounce):
    response = carol_client.get(f"/app/acme/bounces/{bounce.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "person0@example.com" not in html
    assert "p•••@example.com" in html
    assert f"bounces+{testing.token_for(bounce.delivery)}@" in html
    assert "person0@example.com" not in carol_client.get("/app/acme/bounces/").content.decode()
    assert not events("bounce.viewed")


def test_it_hides_reports_from_another_workspace(mallory_client, bounce):
    assert mallory_client.get(f"/app/acme/bounces/{bounce.pk}/").status_code == 404
    assert mallory_client.get(f"/app/evil/bounces/{bounce.pk}/").status_code == 404
    assert "person0" not in mallory_client.get("/app/evil/bounces/").content.decode()


def test_it_refuses_a_role_without_campaigns_view(personas, bounce):
    support = make_user("sue@acme.test")
    make_member(personas.acme, support, Role.SUPPORT)
    assert client_for(support).get("/app/acme/bounces/").status_code == 403
    assert client_for(support).get(f"/app/acme/bounces/{bounce.pk}/").status_code == 403
    assert Client().get("/app/acme/bounces/").status_code == 302


def test_it_filters_and_pages_by_keyset(alice_client, bounce, ws):
    for n in range(3):
        do_process_bounce(testing.dsn(f"x{n}@example.com", nonce=f"n{n}"), channel="smtp")
    assert "Hard bounce" in alice_client.get("/app/acme/bounces/?kind=hard").content.decode()
    assert alice_client.get("/app/acme/bounces/?kind=nonsense").status_code == 400
    assert alice_client.get("/app/acme/bounces/?before=-5").status_code == 400


@pytest.fixture
def unmatched(ws, people):
    raw = (
        f"From: {EVIL_TEXT} <postmaster@relay.example>\r\nSubject: Undeliverable: {EVIL_TEXT}\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "Delivery to the following recipient failed permanently:\r\n\r\n"
        "    person1@example.com\r\n\r\n"
        "550 5.1.1 The email account that you tried to reach does not exist.\r\n"
    ).encode()
    found = do_process_bounce(raw, channel=Bounce.Channel.IMAP, workspace=ws)
    assert found.outcome in ("unmatched", "not_acted")
    do_process_bounce(testing.dsn("nobody@example.org"), channel=Bounce.Channel.IMAP, workspace=ws)
    return found


def test_it_lists_the_reports_not_acted_on_escaped_for_the_owner(alice_client, unmatched, bounce):
    html = alice_client.get("/app/acme/bounces/unmatched/").content.decode()
    assert "person1@example.com" in html and "nobody@example.org" in html
    assert "&lt;script&gt;" in html and EVIL_TEXT not in html
    assert f"/app/acme/bounces/{bounce.pk}/" not in html  # acted on: not listed here
    assert events("subscriber.listed")


def test_it_masks_the_unmatched_reports_for_a_role_without_personal_data(carol_client, unmatched):
    html = carol_client.get("/app/acme/bounces/unmatched/").content.decode()
    assert "person1@example.com" not in html and "nobody@example.org" not in html
    assert "postmaster@relay.example" not in html
    assert "Addresses are masked" in html


def test_it_shows_each_unmatched_report_with_its_diagnostic_and_matched_row(
    alice_client, carol_client, ws, news, people
):
    ledger_rows(launch(ws, [news]), people[1:2], [Delivery.Status.SENT])
    raw = (
        b"From: postmaster@relay.example\r\nSubject: Undeliverable\r\n"
        b"Content-Type: text/plain\r\n\r\n"
        b"Delivery to the following recipient failed permanently:\r\n\r\n"
        b"    person1@example.com\r\n\r\n"
        b"550 5.1.1 The account <script>x</script> does not exist.\r\n"
    )
    found = do_process_bounce(raw, channel=Bounce.Channel.IMAP, workspace=ws)
    assert found.outcome == "not_acted" and found.delivery is not None

    def row_of(client):
        rows = client.get("/app/acme/bounces/unmatched/").content.decode().split("<tr>")
        return next(r for r in rows if f"/app/acme/bounces/{found.pk}/" in r)

    row = row_of(alice_client)
    assert "The account &lt;script&gt;x&lt;/script&gt; does not exist." in row  # the diagnostic
    assert "<script>x" not in row
    # the address named, in the diagnostic, and the person matched with their last delivery
    assert row.count("person1@example.com") == 3
    assert "Autumn news" in row and "Sent" in row  # (not bounced: not acted on)
    row = row_of(carol_client)
    assert "person1@" not in row and row.count("p•••@example.com") == 3
    assert "does not exist" in row and "Autumn news" in row


def test_it_shows_another_workspaces_unmatched_reports_to_nobody(mallory_client, unmatched):
    response = mallory_client.get("/app/acme/bounces/unmatched/")
    assert response.status_code in (403, 404)
