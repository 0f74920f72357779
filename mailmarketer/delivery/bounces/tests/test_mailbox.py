"""The bounce mailbox against a real Dovecot on 127.0.0.1 (Debian's dovecot-imapd, started by
the test with its own configuration: delivery/testing/dovecot.py)."""

import os

import pytest
from django.db import connection

from mailmarketer.audience.models import Suppression
from mailmarketer.delivery.bounces import mailbox, testing
from mailmarketer.delivery.bounces.models import Bounce, BounceMailbox
from mailmarketer.delivery.models import Delivery
from mailmarketer.delivery.testing import dovecot
from mailmarketer.testing import launch, ledger_rows

pytestmark = [
    pytest.mark.slow,
    # Skipped only where the package is missing, never in CI (make test installs it as root).
    pytest.mark.skipif(
        not dovecot.available() and os.environ.get("CI") != "true",
        reason="Debian's dovecot-imapd is not installed (make dovecot, as root)",
    ),
]


@pytest.fixture
def imap():
    with dovecot.DovecotServer() as server:
        yield server


@pytest.fixture
def box(ws, imap, settings):
    settings.BOUNCE_IMAP_CA_FILE = imap.ca_file
    return BounceMailbox.objects.create(
        workspace=ws, host="127.0.0.1", port=imap.port, username=imap.user, password=imap.password
    )


@pytest.fixture
def row(ws, news, people):
    return ledger_rows(launch(ws, [news]), people[:1], [Delivery.Status.SENT])[0]


def test_it_applies_the_mailboxs_bounces_and_moves_them_to_a_folder(ws, imap, box, row):
    imap.deliver(testing.dsn(row.subscriber.email, token=testing.token_for(row)))
    imap.deliver(b"From: x@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: Away\r\n\r\nbye")
    assert mailbox.poll_one() is True
    box.refresh_from_db()
    assert (box.last_error, box.last_count) == ("", 2)
    assert list(Suppression.objects.filter(workspace=ws).values_list("reason", flat=True)) == [
        "hard_bounce"
    ]
    assert set(Bounce.objects.values_list("channel", "outcome")) == {
        ("imap", "suppressed"),
        ("imap", "ignored"),
    }
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 2
    assert mailbox.poll_one() is False  # not due again before the interval


def test_it_deletes_processed_messages_when_told_to(imap, box, row):
    box.after = BounceMailbox.After.DELETE
    box.save()
    imap.deliver(testing.dsn(row.subscriber.email, token=testing.token_for(row)))
    assert mailbox.poll(box) == 1
    assert imap.count("INBOX") == 0 and imap.count("Processed") == -1


def test_it_refuses_a_token_of_another_workspace_in_this_workspaces_mailbox(personas, imap, row):
    evil_box = BounceMailbox.objects.create(
        workspace=personas.evil,
        host="127.0.0.1",
        port=imap.port,
        username=imap.user,
        password=imap.password,
        verify_certificate=False,
    )
    imap.deliver(testing.dsn(row.subscriber.email, token=testing.token_for(row)))
    assert mailbox.poll(evil_box) == 1
    assert Bounce.objects.get().outcome == "refused"
    assert not Suppression.objects.exists()


def test_it_verifies_the_servers_certificate_by_default(imap, box, row, settings):
    settings.BOUNCE_IMAP_CA_FILE = ""  # the test server's certificate is in no trusted store
    imap.deliver(testing.dsn(row.subscriber.email, token=testing.token_for(row)))
    assert mailbox.poll_one() is True
    box.refresh_from_db()
    assert "not trusted" in box.last_error
    assert not Bounce.objects.exists() and imap.count("INBOX") == 1


def test_it_keeps_a_refused_login_for_the_staff_and_the_password_encrypted(imap, box):
    box.password = "wrong"
    box.save()
    assert mailbox.poll_one() is True
    box.refresh_from_db()
    assert box.last_error.startswith("login refused")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM delivery_bouncemailbox WHERE id = %s", [box.pk])
        assert "wrong" not in cursor.fetchone()[0]
