"""What keeps the database's share of sending small (send13c): the ledger's indexes, and
statements whose text does not grow with the batch."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils.timezone import now

from mailmarketer.audience.models import Subscriber
from mailmarketer.delivery import engine, ledger, planner
from mailmarketer.delivery.ledger import Outcome
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import add_people, launch

Status = Delivery.Status


@pytest.fixture
def campaign(personas, staff, news):
    add_people(personas.acme, [news], 12, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign, limit=100)
    return campaign


def ledger_indexes():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "delivery_delivery")
    return {
        name: info
        for name, info in constraints.items()
        if (info["index"] or info["unique"]) and not info["primary_key"]
    }


def test_it_keeps_no_index_that_every_update_of_a_row_would_write_for_nothing(db):
    # Each of a row's two updates on its way to sent writes an entry into every index whose
    # condition it meets: single-column indexes on workspace, campaign or server would be
    # written twice a message and read by nothing that the claim and the unique key do not
    # serve.
    columns = {tuple(info["columns"]) for info in ledger_indexes().values()}
    assert not columns & {("workspace_id",), ("campaign_id",), ("server_id",)}
    assert ("campaign_id", "subscriber_id") in columns


def test_it_claims_through_an_index_of_queued_rows_only(campaign):
    # The claim index holds no sending or sent row: on PostgreSQL its entries are what a
    # claim and a record would otherwise add; SQLite's catalogue keeps the condition too.
    assert "delivery_claim_queued" in ledger_indexes()
    assert "delivery_claim_v2" not in ledger_indexes()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_indexdef('delivery_claim_queued'::regclass),"
                " pg_get_indexdef('delivery_outcomes'::regclass)"
            )
            claim_def, outcomes_def = cursor.fetchone()
        assert "WHERE ((status)::text = 'queued'::text)" in claim_def
        assert "'sent'" not in outcomes_def and "'failed'" in outcomes_def
    claimed = ledger.claim(campaign.pk, "w1", limit=5)
    assert len(claimed) == 5 and len(ledger.claim(campaign.pk, "w2")) == 7


def test_it_records_replies_whatever_characters_they_hold(campaign):
    # On PostgreSQL the columns go as arrays: quotes, braces, commas and backslashes in a
    # relay's reply must arrive as they were.
    a, b, c = ledger.claim(campaign.pk, "w1", limit=3)
    odd = "250 2.0.0 Ok: \"queued\" as {A,1} \\ NULL, 'x'"
    later = now() + timedelta(minutes=5)
    ledger.record([Outcome(a.id, Status.SENT, odd, '<a,"1"}@x>', None)])
    ledger.record(
        [
            Outcome(b.id, Status.QUEUED, "451 {try} later", retry_at=later),
            Outcome(c.id, Status.FAILED, '550 "no", {such} user'),
        ]
    )
    rows = {r.pk: r for r in Delivery.objects.filter(pk__in=[a.id, b.id, c.id])}
    assert (rows[a.id].status, rows[a.id].smtp_reply, rows[a.id].message_id) == (
        "sent",
        odd,
        '<a,"1"}@x>',
    )
    assert (rows[b.id].status, rows[b.id].smtp_reply) == ("queued", "451 {try} later")
    assert abs(rows[b.id].next_attempt_at - later) < timedelta(seconds=1)
    assert (rows[c.id].status, rows[c.id].smtp_reply) == ("failed", '550 "no", {such} user')


def statements_of(call):
    """(sql, number of parameters) of each statement `call` runs, before the values go in."""
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        result = call()
    return seen, result


def test_it_checks_a_batch_of_any_size_with_statements_of_the_same_text(campaign):
    prepared = engine.prepare(campaign)
    ids = list(Delivery.objects.filter(campaign=campaign).values_list("subscriber_id", flat=True))
    small, _ = statements_of(lambda: engine._mailable(prepared, ids[:2]))
    large, (people, reasons) = statements_of(lambda: engine._mailable(prepared, ids))
    # The people with their subscription flags, then the suppressions: two statements whose
    # text and parameters do not grow with the batch (psycopg parses a long statement again
    # on every call; the ORM built this one for every batch).
    assert len(small) == 2 and small == large
    assert set(people) == set(ids) and reasons == {}
    claimed = ledger.claim(campaign.pk, "w1", limit=4)
    one, _ = statements_of(lambda: ledger.record([Outcome(claimed[0].id, Status.SENT, "250")]))
    four, _ = statements_of(
        lambda: ledger.record([Outcome(row.id, Status.SENT, "250") for row in claimed])
    )
    if connection.vendor == "postgresql":  # SQLite's VALUES list has a row of placeholders each
        assert one == four and len(four) == 1


def test_it_reads_the_people_as_the_orm_would(campaign):
    # The statement runs on a bare cursor: the uuid and the attributes come back converted
    # as the ORM's fields convert them (SQLite stores a uuid as 32 hex digits, JSON as text).
    person = Subscriber.objects.filter(deliveries__campaign=campaign).first()
    Subscriber.objects.filter(pk=person.pk).update(attributes={"city": "Bergen", "n": 3})
    people, _ = engine._mailable(engine.prepare(campaign), [person.pk])
    row = people[person.pk]
    assert row["uuid"] == person.uuid and str(row["uuid"]) == str(person.uuid)
    assert row["attributes"] == {"city": "Bergen", "n": 3}
    assert (row["email"], row["status"]) == (person.email, "enabled")


def test_it_reads_each_persons_attributes_whatever_they_hold(campaign):
    # The batch's attributes are decoded in one call (engine._attributes): each person must get
    # their own, however their JSON is written (commas, brackets, quotes, escapes, non-ASCII).
    subscribers = list(Subscriber.objects.filter(deliveries__campaign=campaign).order_by("pk"))
    odd = [
        {},
        {"a": "x,y]}", "b": [1, {"c": None}], "q": '"\\'},
        {"city": "Zürich", "emoji": "\u2603", "n": -1.5e3, "t": True},
        {"nested": {"deep": [[], {}], "s": "},{"}},
    ]
    for person, attributes in zip(subscribers, odd, strict=False):
        Subscriber.objects.filter(pk=person.pk).update(attributes=attributes)
    people, _ = engine._mailable(engine.prepare(campaign), [s.pk for s in subscribers])
    for person in Subscriber.objects.filter(pk__in=[s.pk for s in subscribers]):
        row = people[person.pk]
        assert row["attributes"] == person.attributes
        assert (row["uuid"], row["email"], row["name"]) == (person.uuid, person.email, person.name)
        assert (row["first_name"], row["last_name"]) == (person.first_name, person.last_name)
    assert [people[s.pk]["attributes"] for s in subscribers[:4]] == odd


def test_it_decodes_attributes_the_driver_already_decoded_or_left_empty():
    assert engine._attributes(['{"a": 1}', "[]", "{}"]) == [{"a": 1}, [], {}]
    assert engine._attributes(['{"a": 1}', {"b": 2}, None]) == [{"a": 1}, {"b": 2}, None]
    assert engine._attributes([]) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner and JIT")
def test_it_checks_recipients_with_a_statement_costed_as_one_pass_over_the_batch(campaign):
    # PostgreSQL JIT-compiles a statement whose estimated cost passes jit_above_cost (100,000):
    # the recipients check, costed as 200 index probes for each of a batch's 200 people, passed
    # it at ~50,000 subscribers and spent 8 ms a batch compiling (send13f). Its cost must stay
    # of the order of reading the batch's people and their subscriptions once.
    prepared = engine.prepare(campaign)
    sql, params = engine._people_statement(prepared)
    batch = list(range(1, 201))

    def cost(statement, values):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, values)
            return cursor.fetchone()[0][0]["Plan"]["Total Cost"]

    check = cost(sql, [batch if p is engine._BATCH else p for p in params])
    people = cost("SELECT * FROM audience_subscriber WHERE id = ANY(%s::bigint[])", [batch])
    assert check < 10 * people


def test_it_checks_no_foreign_key_row_by_row_when_rows_are_planned_or_recorded(campaign):
    # Planning gives every row its person, a sent row's record its relay: PostgreSQL checked
    # those constraints row by row at each commit (~3 us of its CPU a message each, send15b).
    # The person's index stays. SQLite keeps the constraints (changing one remakes the table).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "delivery_delivery")
        checked = {tuple(info["columns"]) for info in constraints.values() if info["foreign_key"]}
        assert not checked & {("server_id",), ("subscriber_id",)}
    assert ("subscriber_id",) in {tuple(info["columns"]) for info in ledger_indexes().values()}


def test_a_row_whose_person_went_while_it_was_planned_is_skipped_and_forgets_them(
    campaign, personas
):
    # A chunk planned while its person was being deleted keeps the gone person's id (the
    # deletion's SET NULL did not see the uncommitted row): the person is not found at send
    # time, so the row is skipped as erased, and its record drops the id.
    personas.acme.postal_address = "1 Harbour Road, Bergen"
    personas.acme.save()
    rows = list(Delivery.objects.filter(campaign=campaign).order_by("id"))
    gone = Subscriber.objects.order_by("-pk").first().pk + 1000
    Delivery.objects.filter(pk=rows[0].pk).update(subscriber_id=gone)
    while engine.send_one():
        pass
    after = {r.pk: r for r in Delivery.objects.filter(campaign=campaign)}
    first = after[rows[0].pk]
    assert (first.status, first.skip_reason, first.subscriber_id) == ("skipped", "erased", None)
    assert [(after[r.pk].status, after[r.pk].subscriber_id) for r in rows[1:]] == [
        ("sent", r.subscriber_id) for r in rows[1:]
    ]


@pytest.mark.django_db(transaction=True)
def test_a_part_recorded_after_its_relay_was_deleted_is_still_sent(campaign, personas):
    # The truth beats the relay's deletion: the relay accepted the messages, so the rows are
    # sent (and read as through no relay), where the constraint failed the record at its
    # commit and the rows were sent again once their lease expired.
    from mailmarketer.delivery.models import SmtpServer

    server = SmtpServer.objects.create(
        workspace=personas.acme, name="relay", host="127.0.0.1", port=25, tls_mode="none"
    )
    claimed = ledger.claim(campaign.pk, "w1", limit=2)
    server_id = server.pk
    server.delete()
    if connection.vendor == "sqlite":
        pytest.skip("SQLite keeps the constraint (migration 0010)")
    ledger.record([Outcome(row.id, Status.SENT, "250 ok", "<a@x>", server_id) for row in claimed])
    rows = Delivery.objects.filter(pk__in=[row.id for row in claimed]).select_related("server")
    assert [(row.status, row.server) for row in rows] == [("sent", None), ("sent", None)]
