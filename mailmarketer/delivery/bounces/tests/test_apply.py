from datetime import timedelta

import pytest
from django.db import transaction
from django.utils.timezone import now
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import ConsentRecord, Subscription, Suppression
from mailmarketer.delivery.bounces import testing
from mailmarketer.delivery.bounces.apply import Event, do_process_bounce, do_process_event
from mailmarketer.delivery.bounces.models import Bounce, BounceSettings
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import SETUP, launch, ledger_rows

SMTP, IMAP = Bounce.Channel.SMTP, Bounce.Channel.IMAP
SENT = Delivery.Status.SENT


@pytest.fixture
def rows(ws, news, people):
    campaign = launch(ws, [news])
    return ledger_rows(campaign, people, [SENT] * len(people))


@pytest.fixture
def evil_rows(personas):
    evil = personas.evil
    evil_list = audience.do_create_list(evil, name="Evil news", slug="enews", actor=SETUP)
    found = []
    for i in range(3):
        # The same addresses as acme's people: a workspace's bounce must not touch the other's.
        person = audience.do_create_subscriber(evil, email=f"person{i}@example.com", actor=SETUP)
        audience.do_subscribe(
            person, [evil_list], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True
        )
        found.append(person)
    return ledger_rows(launch(evil, [evil_list]), found, [SENT] * 3)


def _suppressed(workspace):
    return dict(Suppression.objects.filter(workspace=workspace).values_list("email_hash", "reason"))


def _status(person):
    return set(Subscription.objects.filter(subscriber=person).values_list("status", flat=True))


def test_it_bounces_the_row_and_suppresses_and_unsubscribes_on_a_hard_bounce(ws, rows):
    row = rows[0]
    bounce = do_process_bounce(
        testing.dsn(row.subscriber.email, token=testing.token_for(row)), channel=SMTP
    )
    assert (bounce.kind, bounce.outcome, bounce.matched_by) == ("hard", "suppressed", "token")
    assert bounce.workspace_id == ws.pk and bounce.delivery_id == row.pk
    row.refresh_from_db()
    assert row.status == Delivery.Status.BOUNCED
    assert "5.1.1" in row.smtp_reply
    assert list(_suppressed(ws).values()) == [Suppression.Reason.HARD_BOUNCE]
    assert _status(row.subscriber) == {Subscription.Status.UNSUBSCRIBED}
    withdrawal = ConsentRecord.objects.get(
        subscriber=row.subscriber, action=ConsentRecord.Action.WITHDRAW
    )
    assert withdrawal.source_type == "system"
    assert (
        "Hard bounce 5.1.1" in withdrawal.source_label and "Autumn news" in withdrawal.source_label
    )
    assert Subscription.objects.get(subscriber=row.subscriber).status_reason == Reason.BY_BOUNCE
    # The others are untouched.
    assert _status(rows[1].subscriber) == {Subscription.Status.CONFIRMED}


def test_it_suppresses_the_rows_address_not_the_one_the_report_names(ws, rows):
    row = rows[0]
    do_process_bounce(
        testing.dsn("someone.else@example.com", token=testing.token_for(row)), channel=SMTP
    )
    assert audience.suppression_for(ws, row.subscriber.email) is not None
    assert audience.suppression_for(ws, "someone.else@example.com") is None


def test_it_counts_soft_bounces_and_treats_the_third_in_15_days_as_hard(ws, rows):
    row = rows[0]

    def soft(n):
        return do_process_bounce(
            testing.dsn(
                row.subscriber.email,
                token=testing.token_for(row),
                status="5.2.2",
                diagnostic="552 5.2.2 Mailbox full",
                nonce=str(n),
            ),
            channel=SMTP,
        )

    assert soft(1).outcome == "counted"
    assert soft(2).outcome == "counted"
    assert not _suppressed(ws)
    third = soft(3)
    assert third.outcome == "soft_to_hard"
    assert list(_suppressed(ws).values()) == [Suppression.Reason.HARD_BOUNCE]
    assert _status(row.subscriber) == {Subscription.Status.UNSUBSCRIBED}


def test_it_forgets_soft_bounces_older_than_the_workspaces_window(ws, rows):
    BounceSettings.objects.create(workspace=ws, soft_bounce_limit=2, soft_bounce_days=5)
    row = rows[0]
    first = do_process_bounce(
        testing.dsn(row.subscriber.email, token=testing.token_for(row), status="4.2.2", nonce="a"),
        channel=SMTP,
    )
    Bounce.objects.filter(pk=first.pk).update(received_at=now() - timedelta(days=6))
    second = do_process_bounce(
        testing.dsn(row.subscriber.email, token=testing.token_for(row), status="4.2.2", nonce="b"),
        channel=SMTP,
    )
    assert second.outcome == "counted"
    third = do_process_bounce(
        testing.dsn(row.subscriber.email, token=testing.token_for(row), status="4.2.2", nonce="c"),
        channel=SMTP,
    )
    assert third.outcome == "soft_to_hard"


def test_it_unsubscribes_from_everything_and_suppresses_on_a_complaint(ws, rows, news):
    other = audience.do_create_list(ws, name="Offers", slug="offers", actor=SETUP)
    row = rows[1]
    audience.do_subscribe(
        row.subscriber, [other], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True
    )
    bounce = do_process_bounce(
        testing.arf(row.subscriber.email, token=testing.token_for(row)), channel=SMTP
    )
    assert (bounce.kind, bounce.outcome) == ("complaint", "complained")
    assert list(_suppressed(ws).values()) == [Suppression.Reason.COMPLAINT]
    assert _status(row.subscriber) == {Subscription.Status.UNSUBSCRIBED}
    assert set(
        Subscription.objects.filter(subscriber=row.subscriber).values_list(
            "status_reason", flat=True
        )
    ) == {Reason.BY_COMPLAINT}
    row.refresh_from_db()
    assert row.status == SENT  # it was delivered; the person complained about it


def test_it_matches_by_our_quoted_message_id_without_a_token(ws, rows):
    row = rows[2]
    bounce = do_process_bounce(
        testing.dsn(row.subscriber.email, message_id=testing.message_id_for(row)), channel=SMTP
    )
    assert (bounce.matched_by, bounce.outcome) == ("message_id", "suppressed")


def test_it_never_suppresses_on_a_forged_token(ws, rows):
    row = rows[0]
    real = testing.token_for(row)
    for n, forged in enumerate(
        [
            real[:-1] + ("a" if real[-1] != "a" else "b"),
            f"{rows[1].pk}-{real.split('-')[1]}",
            "999999-abcdefghijklmnop",
        ]
    ):
        bounce = do_process_bounce(
            testing.dsn(row.subscriber.email, token=forged, nonce=str(n)), channel=SMTP
        )
        assert bounce.outcome == "unmatched"
        assert bounce.workspace_id is None
    forged_id = f"<{row.pk}.{'0' * 32}@acme.test>"
    assert (
        do_process_bounce(
            testing.dsn(row.subscriber.email, message_id=forged_id), channel=SMTP
        ).outcome
        == "unmatched"
    )
    assert not Suppression.objects.exists()


def test_it_refuses_a_token_of_another_workspace_in_a_workspaces_mailbox(ws, rows, evil_rows):
    row = evil_rows[0]
    bounce = do_process_bounce(
        testing.dsn(row.subscriber.email, token=testing.token_for(row)), channel=IMAP, workspace=ws
    )
    assert bounce.outcome == "refused"
    assert not Suppression.objects.exists()


def test_it_shows_but_does_not_act_on_a_match_by_address_alone(ws, rows):
    email = rows[0].subscriber.email
    bounce = do_process_bounce(testing.dsn(email), channel=IMAP, workspace=ws)
    assert (bounce.matched_by, bounce.outcome) == ("address", "not_acted")
    assert bounce.subscriber_id == rows[0].subscriber_id
    assert not Suppression.objects.exists()


def test_it_acts_on_a_verified_provider_event_by_address(ws, rows):
    email = rows[0].subscriber.email
    event = Event("mailgun", "ev-1", "hard", email, "5.1.1", "550 5.1.1 no such user")
    bounce = do_process_event(event, workspace=ws)
    assert (bounce.matched_by, bounce.outcome) == ("provider", "suppressed")
    assert audience.suppression_for(ws, email).reason == Suppression.Reason.HARD_BOUNCE
    # Replayed: the same event id is applied once.
    assert do_process_event(event, workspace=ws).pk == bounce.pk
    assert Bounce.objects.count() == 1


def test_it_applies_the_same_message_once(ws, rows):
    raw = testing.dsn(rows[0].subscriber.email, token=testing.token_for(rows[0]), status="4.2.2")
    first = do_process_bounce(raw, channel=SMTP)
    again = do_process_bounce(raw, channel=SMTP)
    assert first.pk == again.pk and Bounce.objects.count() == 1


def test_it_ignores_auto_replies_and_delay_warnings(ws, rows):
    row = rows[0]
    vacation = (
        f"From: {row.subscriber.email}\r\nTo: bounces+{testing.token_for(row)}@b.test\r\n"
        "Auto-Submitted: auto-replied\r\nSubject: Away\r\n\r\nBack on Monday"
    ).encode()
    assert do_process_bounce(vacation, channel=SMTP).outcome == "ignored"
    delayed = testing.dsn(
        row.subscriber.email, token=testing.token_for(row), action="delayed", status="4.4.1"
    )
    assert do_process_bounce(delayed, channel=SMTP).outcome == "ignored"
    assert not Suppression.objects.exists()


def test_it_keeps_the_raw_message_30_days(ws, rows):
    from mailmarketer.delivery.bounces.apply import purge_raw_one

    bounce = do_process_bounce(testing.dsn("x@example.com"), channel=SMTP)
    assert bytes(bounce.raw).startswith(b"Return-Path")
    assert purge_raw_one() is False
    Bounce.objects.filter(pk=bounce.pk).update(received_at=now() - timedelta(days=31))
    assert purge_raw_one() is True
    bounce.refresh_from_db()
    assert bytes(bounce.raw) == b"" and bounce.kind == "hard"


def test_it_erases_the_bounces_naming_an_erased_person(ws, rows):
    row = rows[0]
    do_process_bounce(testing.dsn(row.subscriber.email, token=testing.token_for(row)), channel=SMTP)
    audience.do_erase_subscriber(row.subscriber, actor=SETUP)
    assert not Bounce.objects.exists()
    assert audience.suppression_for(ws, "person0@example.com") is not None


_kinds = st.sampled_from(["dsn-hard", "dsn-soft", "arf"])
_keys = st.sampled_from(["acme", "evil", "evil-mid", "forged", "evil-address", "none"])


@pytest.mark.django_db(transaction=False)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_it_never_suppresses_for_a_row_of_another_workspace(ws, rows, evil_rows, data):
    """Through acme's mailbox, any sequence of reports: evil gains no suppression, and acme's
    suppressions name only people whose own valid token or Message-ID was reported."""
    steps = data.draw(st.lists(st.tuples(_kinds, _keys, st.integers(0, 2)), max_size=8))
    with transaction.atomic():
        reported = set()
        for n, (kind, key, index) in enumerate(steps):
            acme_row, evil_row = rows[index], evil_rows[index]
            email = acme_row.subscriber.email
            token, message_id = "", ""
            if key == "acme":
                token = testing.token_for(acme_row)
                reported.add(acme_row.subscriber_id)
            elif key == "evil":
                token = testing.token_for(evil_row)
            elif key == "evil-mid":
                message_id = testing.message_id_for(evil_row)
            elif key == "forged":
                token = f"{evil_row.pk}-{testing.token_for(acme_row).split('-')[1]}"
            if kind == "arf":
                raw = testing.arf(email, token=token, nonce=str(n))
            else:
                raw = testing.dsn(
                    email,
                    token=token,
                    message_id=message_id,
                    nonce=str(n),
                    status="5.1.1" if kind == "dsn-hard" else "4.2.2",
                )
            do_process_bounce(raw, channel=IMAP, workspace=ws)
            # The receiver (no workspace) with a forged token acts on nobody.
            if key == "forged":
                do_process_bounce(raw.replace(b"Message-Id", b"X-N"), channel=SMTP)
        assert not Suppression.objects.filter(workspace=ws.__class__.objects.get(slug="evil"))
        suppressed = set(
            Suppression.objects.filter(workspace=ws).values_list("email_hash", flat=True)
        )
        allowed = {
            audience.suppression_hash(r.subscriber.email)
            for r in rows
            if r.subscriber_id in reported
        }
        assert suppressed <= allowed
        transaction.set_rollback(True)
