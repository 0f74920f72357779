import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now

from mailmarketer.delivery import ledger, planner
from mailmarketer.delivery.ledger import Outcome
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import add_people, launch

Status = Delivery.Status


@pytest.fixture
def campaign(personas, staff, news):
    add_people(personas.acme, [news], 10, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign, limit=100)
    return campaign


def test_it_claims_disjoint_batches_with_a_lease(campaign, settings):
    settings.DELIVERY_LEASE_S = 60
    first = ledger.claim(campaign.pk, "w1", limit=4)
    second = ledger.claim(campaign.pk, "w2", limit=4)
    third = ledger.claim(campaign.pk, "w3", limit=4)
    ids = [r.id for r in first + second + third]
    assert len(ids) == len(set(ids)) == 10
    row = Delivery.objects.get(pk=first[0].id)
    assert (row.status, row.lease_owner, row.attempts) == ("sending", "w1", 1)
    assert row.lease_expires_at > now() + timedelta(seconds=50)
    assert ledger.claim(campaign.pk, "w4") == []


def expire(ids):
    Delivery.objects.filter(pk__in=ids).update(lease_expires_at=now() - timedelta(seconds=1))


def test_it_returns_expired_leases_to_the_queue_with_the_attempt_given_back(campaign):
    claimed = ledger.claim(campaign.pk, "dead", limit=3)
    assert ledger.reclaim_expired() == 0
    expire([r.id for r in claimed])
    assert ledger.reclaim_expired() == 3
    rows = Delivery.objects.filter(pk__in=[r.id for r in claimed])
    # Nobody knows whether the dead worker's attempt reached the relay: it does not count.
    assert {(r.status, r.attempts, r.lease_expiries) for r in rows} == {("queued", 0, 1)}


def test_it_hands_a_dead_workers_rows_out_first_and_alone_after_a_second_death(campaign):
    claimed = ledger.claim(campaign.pk, "dead", limit=3)
    expire([r.id for r in claimed])
    ledger.reclaim_expired()
    # Once: bystanders of a killed worker, back at the head of the queue in one batch.
    again = ledger.claim(campaign.pk, "alive", limit=3)
    assert [r.id for r in again] == [r.id for r in claimed]
    expire([r.id for r in again])
    ledger.reclaim_expired()
    # Twice: one of them may be what kills workers, so each goes alone.
    alone = [ledger.claim(campaign.pk, "alive", limit=10) for _ in range(3)]
    assert [len(batch) for batch in alone] == [1, 1, 1]
    assert {batch[0].id for batch in alone} == {r.id for r in claimed}
    assert len(ledger.claim(campaign.pk, "alive", limit=10)) == 7


def test_it_sets_a_row_aside_as_dead_after_its_lease_expired_too_often(campaign, settings):
    settings.DELIVERY_MAX_LEASE_EXPIRIES = 2
    (row,) = ledger.claim(campaign.pk, "w1", limit=1)
    Delivery.objects.filter(pk=row.id).update(smtp_reply="worker error: MemoryError()")
    expire([row.id])
    ledger.reclaim_expired()
    assert Delivery.objects.get(pk=row.id).status == "queued"
    (again,) = ledger.claim(campaign.pk, "w2", limit=1)
    assert again.id == row.id  # at the head of the queue
    expire([row.id])
    assert ledger.reclaim_expired() == 1
    dead = Delivery.objects.get(pk=row.id)
    assert dead.status == "dead" and dead.lease_expires_at is None
    assert dead.smtp_reply.startswith("dead: its worker stopped 2 times")
    assert dead.smtp_reply.endswith("worker error: MemoryError()")  # the error is kept
    assert row.id not in {r.id for r in ledger.claim(campaign.pk, "w3", limit=100)}


def test_it_renews_only_the_leases_their_owner_still_holds(campaign, settings):
    settings.DELIVERY_LEASE_S = 10
    mine = ledger.claim(campaign.pk, "w1", limit=2)
    theirs = ledger.claim(campaign.pk, "w2", limit=2)
    ids = [r.id for r in mine + theirs]
    expire(ids)
    assert ledger.renew(ids, "w1") == 2
    assert ledger.reclaim_expired() == 2
    kept = Delivery.objects.filter(pk__in=[r.id for r in mine])
    assert {(r.status, r.lease_owner) for r in kept} == {("sending", "w1")}


def test_it_gives_back_a_batch_unsent_without_counting_an_attempt(campaign):
    claimed = ledger.claim(campaign.pk, "w1", limit=2)
    assert ledger.release([r.id for r in claimed], "someone-else") == 0
    assert ledger.release([r.id for r in claimed], "w1") == 2
    rows = Delivery.objects.filter(pk__in=[r.id for r in claimed])
    assert {(r.status, r.attempts, r.lease_owner) for r in rows} == {("queued", 0, "")}


def test_it_records_each_outcome_with_its_own_fields(campaign):
    a, b, c, d = ledger.claim(campaign.pk, "w1", limit=4)
    later = now() + timedelta(minutes=5)
    ledger.record(
        [
            Outcome(a.id, Status.SENT, "250 2.0.0 queued as A1", "<a@x>", None),
            Outcome(b.id, Status.QUEUED, "451 try later", retry_at=later),
            Outcome(c.id, Status.FAILED, "550 5.1.1 no such user"),
            Outcome(d.id, Status.SKIPPED, "skipped: unsubscribed", skip_reason="unsubscribed"),
        ]
    )
    rows = {r.pk: r for r in Delivery.objects.filter(pk__in=[a.id, b.id, c.id, d.id])}
    assert (rows[a.id].status, rows[a.id].message_id, rows[a.id].smtp_reply) == (
        "sent",
        "<a@x>",
        "250 2.0.0 queued as A1",
    )
    assert rows[a.id].sent_at is not None and rows[a.id].lease_owner == ""
    assert rows[b.id].status == "queued" and abs(rows[b.id].next_attempt_at - later) < timedelta(1)
    assert rows[b.id].sent_at is None
    assert (rows[c.id].status, rows[d.id].status) == ("failed", "skipped")
    assert (rows[c.id].skip_reason, rows[d.id].skip_reason) == ("", "unsubscribed")
    # A requeued row is claimed again only when its time comes.
    assert b.id not in {r.id for r in ledger.claim(campaign.pk, "w2", limit=10)}


def test_it_records_replies_and_times_exactly_whatever_they_hold(campaign):
    # The record's columns go to PostgreSQL as the text of arrays (ledger.pg_array): the array
    # syntax's own characters in a relay's reply must come back as they were.
    a, b, c = ledger.claim(campaign.pk, "w1", limit=3)
    odd = "a \"quoted\" \\ reply, {braced}, NULL, 'single' \u00e9"
    later = now() + timedelta(minutes=5, microseconds=7)
    ledger.record(
        [
            Outcome(a.id, Status.SENT, odd, '<"odd"\\id@x>', None),
            Outcome(b.id, Status.QUEUED, "NULL", retry_at=later),
            Outcome(c.id, Status.FAILED, ""),
        ]
    )
    rows = {r.pk: r for r in Delivery.objects.filter(pk__in=[a.id, b.id, c.id])}
    assert (rows[a.id].smtp_reply, rows[a.id].message_id) == (odd, '<"odd"\\id@x>')
    assert (rows[b.id].smtp_reply, rows[b.id].next_attempt_at) == ("NULL", later)
    assert (rows[c.id].status, rows[c.id].smtp_reply) == ("failed", "")


def test_it_hands_out_the_claimed_rows_times_as_stored(campaign):
    # Loaded by datetime.fromisoformat on PostgreSQL (ledger.iso_timestamps), aware either way.
    claimed = ledger.claim(campaign.pk, "w1", limit=3)
    stored = {r.pk: r for r in Delivery.objects.filter(pk__in=[c.id for c in claimed])}
    for row in claimed:
        assert row.created_at == stored[row.id].created_at
        assert row.created_at.utcoffset() == timedelta(0)
        assert row.position[1] == row.id


@pytest.mark.django_db
def test_it_writes_postgresql_arrays_that_read_back_as_given():
    values = ["a", 'b"c', "d\\e", "NULL", "", " x ", "{y,z}", "it's", None]
    assert ledger.pg_array([1, -2]) == "{1,-2}"
    with pytest.raises(TypeError):
        ledger.pg_array([b"bytes"])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::text[], %s::bigint[]", [ledger.pg_array(values), "{}"])
            assert cursor.fetchone() == (values, [])


def test_it_backs_off_longer_with_each_attempt():
    delays = [ledger.backoff(n) for n in range(1, 8)]
    assert delays == sorted(delays) and delays[0] == timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's")
def test_it_never_hands_a_row_to_two_concurrent_claimers(personas, staff, news):
    add_people(personas.acme, [news], 60, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign, limit=100)
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(3)

    def worker(name):
        barrier.wait()
        got = []
        while batch := ledger.claim(campaign.pk, name, limit=5):
            got += [r.id for r in batch]
        results[name] = got
        connections.close_all()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    all_ids = [i for ids in results.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 60


def test_it_claims_after_its_last_place_and_then_from_the_start(campaign):
    # A claim starts after the worker's last one (the claim index's dead entries before it are
    # not walked again); rows that came back behind it are claimed once those after it run out.
    first = ledger.claim(campaign.pk, "w1", limit=3)
    place = max(r.position for r in first)
    ledger.release([first[0].id], "w1")
    second = ledger.claim(campaign.pk, "w1", limit=3, after=place)
    assert first[0].id not in {r.id for r in second}
    assert min(r.position for r in second) > place
    rest = ledger.claim(campaign.pk, "w1", limit=10, after=max(r.position for r in second))
    assert len(rest) == 5 and first[0].id in {r.id for r in rest}
    assert ledger.claim(campaign.pk, "w1", limit=10, after=max(r.position for r in rest)) == []


def test_it_sends_a_suspect_row_alone_whatever_the_place(campaign):
    claimed = ledger.claim(campaign.pk, "dead", limit=2)
    for _ in range(2):
        expire([r.id for r in claimed])
        ledger.reclaim_expired()
        if _ == 0:
            claimed = ledger.claim(campaign.pk, "dead", limit=2)
    far = (now() + timedelta(days=1), 10**12)
    first = ledger.claim(campaign.pk, "w1", limit=10, after=far)
    assert len(first) == 1 and first[0].id in {r.id for r in claimed}


def test_it_looks_only_at_leases_that_expired_since_when_asked(campaign):
    claimed = ledger.claim(campaign.pk, "dead", limit=3)
    Delivery.objects.filter(pk__in=[r.id for r in claimed]).update(
        lease_expires_at=now() - timedelta(minutes=10)
    )
    assert ledger.reclaim_expired(since=now() - timedelta(minutes=5)) == 0
    assert ledger.reclaim_expired(since=now() - timedelta(minutes=15)) == 3


def test_a_relaxed_claim_and_record_do_their_work_and_say_how_they_commit(campaign):
    # On PostgreSQL a claim and a part's record carry `SET LOCAL synchronous_commit TO off` in
    # their round trip (ledger.RELAXED_COMMIT); their rows come back and are written all the
    # same. A record of several kinds (one transaction) and the default record wait as before.
    with CaptureQueriesContext(connection) as queries:
        claimed = ledger.claim(campaign.pk, "w1", limit=4)
        ledger.record([Outcome(claimed[0].id, Status.SENT, "250 a", "<a@x>")], durable=False)
        ledger.record([Outcome(claimed[1].id, Status.SENT, "250 b", "<b@x>")])
        ledger.record(
            [
                Outcome(claimed[2].id, Status.SENT, "250 c", "<c@x>"),
                Outcome(claimed[3].id, Status.FAILED, "550 no"),
            ],
            durable=False,
        )
    assert len(claimed) == 4
    statuses = dict(Delivery.objects.filter(campaign=campaign).values_list("id", "status"))
    assert [statuses[r.id] for r in claimed] == ["sent", "sent", "sent", "failed"]
    writes = [q["sql"] for q in queries if "UPDATE delivery_delivery SET status" in q["sql"]]
    relaxed = [sql.startswith(ledger.RELAXED_COMMIT) for sql in writes]
    if connection.vendor == "postgresql":
        assert relaxed == [True, True, False, False, False]
    else:
        assert not any(relaxed)
