"""The receiver's queue and the batch applier: what is stored before the 250 is applied once,
set-based, with the outcomes each report would have had applied alone in order."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import ConsentRecord, Subscription, Suppression
from mailmarketer.delivery.bounces import apply, testing
from mailmarketer.delivery.bounces.models import Bounce, PendingReport
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import SETUP, launch, ledger_rows

SENT = Delivery.Status.SENT


@pytest.fixture
def rows(ws, news, people):
    return ledger_rows(launch(ws, [news]), people, [SENT] * len(people))


def _many(ws, news, n):
    people = [
        audience.do_create_subscriber(ws, email=f"many{i}@example.net", actor=SETUP)
        for i in range(n)
    ]
    for person in people:
        audience.do_subscribe(
            person, [news], actor=SETUP, reason=Subscription.Reason.BY_ADMIN, confirmed=True
        )
    return ledger_rows(launch(ws, [news], name="Many"), people, [SENT] * n)


def _hard(row, nonce):
    raw = testing.dsn(row.subscriber.email, token=testing.token_for(row), nonce=nonce)
    return raw, [f"bounces+{testing.token_for(row)}@bounce.acme.test"]


def _soft(row, nonce):
    raw = testing.dsn(
        row.subscriber.email,
        token=testing.token_for(row),
        status="4.2.2",
        diagnostic="452 4.2.2 Mailbox full",
        nonce=nonce,
    )
    return raw, []


def test_it_applies_what_the_receiver_stored_and_empties_the_queue(ws, rows):
    apply.store_received([_hard(rows[0], "a"), _hard(rows[1], "b")])
    assert PendingReport.objects.count() == 2 and not Bounce.objects.exists()
    assert apply.apply_pending_one() is True
    assert apply.apply_pending_one() is False
    assert not PendingReport.objects.exists()
    assert sorted(Bounce.objects.values_list("outcome", flat=True)) == ["suppressed"] * 2
    assert Delivery.objects.filter(status=Delivery.Status.BOUNCED).count() == 2
    assert Suppression.objects.filter(workspace=ws).count() == 2


def test_it_queues_a_message_received_twice_once_and_applies_it_once(ws, rows):
    message = _hard(rows[0], "a")
    apply.store_received([message, message])
    apply.store_received([message])  # the MTA retrying after a lost 250
    assert PendingReport.objects.count() == 1
    apply.apply_pending_one()
    apply.store_received([message])  # again, after it was applied
    apply.apply_pending_one()
    assert Bounce.objects.count() == 1 and not PendingReport.objects.exists()
    assert Suppression.objects.count() == 1


def test_a_batch_has_the_outcomes_of_its_reports_applied_one_after_the_other(ws, rows, news):
    first, second, third = rows
    batch = [
        _soft(first, "s1"),
        _hard(second, "h1"),
        _soft(first, "s2"),
        _hard(second, "h2"),  # the same person again: suppressed already
        (testing.arf(third.subscriber.email, token=testing.token_for(third)), []),
        _soft(first, "s3"),  # the third soft bounce in 15 days: hard
        (testing.dsn("x@example.com", token=f"{first.pk}-forgedforged"), []),
        _hard(second, "h1"),  # the very same message as the second: applied once
    ]
    apply.store_received(batch)
    assert PendingReport.objects.count() == 7
    apply.apply_pending_one()
    outcomes = list(Bounce.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == [
        "counted",
        "suppressed",
        "counted",
        "already",
        "complained",
        "soft_to_hard",
        "unmatched",
    ]
    reasons = dict(Suppression.objects.values_list("email_hash", "reason"))
    assert reasons == {
        audience.suppression_hash(first.subscriber.email): Suppression.Reason.HARD_BOUNCE,
        audience.suppression_hash(second.subscriber.email): Suppression.Reason.HARD_BOUNCE,
        audience.suppression_hash(third.subscriber.email): Suppression.Reason.COMPLAINT,
    }
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    # A complaint unsubscribes and suppresses; the message was delivered, so its row stays sent.
    assert statuses == {first.pk: "bounced", second.pk: "bounced", third.pk: "sent"}
    assert set(Subscription.objects.values_list("status", flat=True)) == {"unsubscribed"}
    withdrawals = ConsentRecord.objects.filter(action=ConsentRecord.Action.WITHDRAW)
    assert withdrawals.count() == 3
    labels = sorted(withdrawals.values_list("source_label", flat=True))
    assert any(label.startswith("Spam complaint") for label in labels)
    assert all("Autumn news" in label and "bounce #" in label for label in labels)
    # One "bounce.received" audit row per report of a workspace (the unmatched one names
    # none), one per suppression added and one per person unsubscribed, as one at a time.
    events = list(AuditEvent.objects.values_list("event", flat=True))
    assert events.count("bounce.received") == 6
    assert events.count("suppression.added") == 3
    assert events.count("subscriber.unsubscribed") == 3


@pytest.mark.django_db
def test_its_statements_per_batch_do_not_grow_with_the_batch(ws, news):
    def statements(rows, nonce):
        apply.store_received([_hard(row, f"{nonce}{row.pk}") for row in rows])
        with CaptureQueriesContext(connection) as applied:
            apply.apply_pending_one()
        assert not PendingReport.objects.exists()
        return len(applied.captured_queries)

    many = _many(ws, news, 60)
    small, large = statements(many[:5], "s"), statements(many[5:], "l")
    assert large <= small + 6, (small, large)  # bulk inserts split in chunks on SQLite only
    assert Delivery.objects.filter(status=Delivery.Status.BOUNCED).count() == 60


def test_it_applies_the_rest_of_a_batch_and_parks_a_report_that_keeps_failing(
    ws, rows, monkeypatch
):
    real = apply.apply_reports

    def fussy(reports, **kw):
        if any(b"poison" in r.raw for r in reports):
            raise ValueError("cannot handle this one")
        return real(reports, **kw)

    monkeypatch.setattr(apply, "apply_reports", fussy)
    poison = (b"Subject: poison\r\n\r\nx", [])
    apply.store_received([_hard(rows[0], "a"), poison, _hard(rows[1], "b")])
    apply.apply_pending_one()
    assert Bounce.objects.count() == 2  # the others are applied
    waiting = PendingReport.objects.get()
    assert waiting.attempts == 1 and "ValueError" in waiting.last_error
    for _ in range(apply.PARK_AFTER - 1):
        apply.apply_pending_one()
    assert not PendingReport.objects.exists()
    parked = Bounce.objects.order_by("-id").first()
    assert (parked.outcome, parked.kind) == ("refused", "unknown")
    assert "ValueError" in parked.reason and bytes(parked.raw).endswith(b"x")


def test_the_ledger_statement_names_the_ledger_table():
    assert f"UPDATE {Delivery._meta.db_table} " in apply.BOUNCE_ROWS_SQL


_steps = st.lists(
    st.tuples(
        st.sampled_from(["hard", "soft", "arf", "delayed"]),
        st.sampled_from(["token", "message_id", "forged", "none", "again"]),
        st.integers(0, 2),
        st.sampled_from([apply.Bounce.Channel.SMTP, apply.Bounce.Channel.IMAP]),
    ),
    max_size=10,
)


def _reports(ws, rows, steps):
    reports, last = [], None
    for n, (kind, key, index, channel) in enumerate(steps):
        row = rows[index]
        if key == "again" and last is not None:
            reports.append(last)
            continue
        token = testing.token_for(row) if key == "token" else ""
        if key == "forged":
            token = f"{row.pk}-{'f' * 16}"
        message_id = testing.message_id_for(row) if key == "message_id" else ""
        if kind == "arf":
            raw = testing.arf(row.subscriber.email, token=token, nonce=str(n))
        else:
            raw = testing.dsn(
                row.subscriber.email,
                token=token,
                message_id=message_id,
                nonce=str(n),
                status={"hard": "5.1.1", "soft": "4.2.2", "delayed": "4.4.1"}[kind],
                action="delayed" if kind == "delayed" else "failed",
            )
        last = apply.report_of_message(
            raw, channel=channel, workspace=ws if channel == apply.Bounce.Channel.IMAP else None
        )
        reports.append(last)
    return reports


def _state():
    return (
        list(Bounce.objects.order_by("id").values_list("kind", "outcome", "matched_by", "reason")),
        sorted(Suppression.objects.values_list("email_hash", "reason")),
        sorted(Subscription.objects.values_list("subscriber_id", "status", "status_reason")),
        sorted(Delivery.objects.values_list("pk", "status", "smtp_reply")),
        ConsentRecord.objects.filter(action="withdraw").count(),
        sorted(AuditEvent.objects.values_list("event", flat=True)),
    )


@pytest.mark.django_db(transaction=False)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_batch_leaves_what_its_reports_one_at_a_time_leave(ws, rows, data):
    reports = _reports(ws, rows, data.draw(_steps))
    with transaction.atomic():
        for report in reports:
            apply.apply_reports([report])
        one_by_one = _state()
        transaction.set_rollback(True)
    with transaction.atomic():
        apply.apply_reports(reports)
        batched = _state()
        transaction.set_rollback(True)
    assert batched == one_by_one


def test_it_applies_only_the_reports_no_other_applier_took_while_it_classified(
    ws, rows, monkeypatch
):
    apply.store_received([_hard(rows[0], "a"), _hard(rows[1], "b")])
    taken = PendingReport.objects.order_by("id").first()
    real = apply.report_of_message

    def meanwhile(raw, **kw):
        # Another applier claims, applies and deletes the first while this one classifies.
        PendingReport.objects.filter(pk=taken.pk).delete()
        return real(raw, **kw)

    monkeypatch.setattr(apply, "report_of_message", meanwhile)
    assert apply.apply_pending_one() is True
    assert Bounce.objects.count() == 1 and not PendingReport.objects.exists()
    assert Bounce.objects.get().delivery_id == rows[1].pk


def test_the_bouncers_applier_applies_the_queue_and_stops_when_its_parent_is_gone(
    ws, rows, monkeypatch
):
    from mailmarketer.delivery.bounces import applier

    apply.store_received([_hard(rows[0], "a"), _hard(rows[1], "b")])
    parents = iter([42, 42, 42])
    monkeypatch.setattr(applier.os, "getppid", lambda: next(parents, 1))  # then reparented
    monkeypatch.setattr(applier.signal, "signal", lambda *args: None)
    applier.run(42, idle_s=0)  # returns: its parent is gone
    assert not PendingReport.objects.exists() and Bounce.objects.count() == 2
