"""audience.bulk_withdraw writes, set-based, the rows do_unsubscribe (all lists) and
do_add_suppression write one person at a time."""

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.bulk_withdraw import Withdrawal, suppressed_already, withdraw_many
from mailmarketer.audience.models import ConsentRecord, Subscription, Suppression

SYSTEM = Actor.system("bounce processing")
Reason = Subscription.Reason


def _person(workspace, email, lists, staff):
    person = actions.do_create_subscriber(workspace, email=email, actor=staff)
    actions.do_subscribe(person, lists, actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    return person


def _rows(person):
    subs = sorted(
        Subscription.objects.filter(subscriber=person).values_list("status", "status_reason")
    )
    records = sorted(
        ConsentRecord.objects.filter(subscriber=person, action="withdraw").values_list(
            "purpose", "source_type", "source_id", "source_label", "ip"
        )
    )
    return subs, records


def test_it_writes_what_the_one_person_actions_write(personas, news, webinars, staff):
    acme = personas.acme
    one = _person(acme, "one@example.com", [news, webinars], staff)
    two = _person(acme, "two@example.com", [news, webinars], staff)
    actions.do_unsubscribe(
        one,
        actor=SYSTEM,
        reason=Reason.BY_BOUNCE,
        source=actions.ConsentSource("system", "7", "Hard bounce 5.1.1"),
    )
    actions.do_add_suppression(
        acme, email=one.email, reason=Suppression.Reason.HARD_BOUNCE, note="n", actor=SYSTEM
    )
    [done] = withdraw_many(
        [
            Withdrawal(
                two,
                reason=Reason.BY_BOUNCE,
                suppression_reason=Suppression.Reason.HARD_BOUNCE,
                source_type="system",
                source_id="7",
                source_label="Hard bounce 5.1.1",
                note="n",
            )
        ],
        actor=SYSTEM,
    )
    assert (done.unsubscribed, done.suppressed) == (2, True)
    assert _rows(one) == _rows(two)
    assert actions.suppression_for(acme, two.email).reason == Suppression.Reason.HARD_BOUNCE

    def audits(obj_ids):
        return sorted(
            (e.event, e.object_type, e.new, e.actor_label)
            for e in AuditEvent.objects.filter(object_id__in=obj_ids, actor_label=SYSTEM.label)
        )

    first = actions.suppression_for(acme, one.email)
    second = actions.suppression_for(acme, two.email)
    assert audits([str(one.pk), str(first.pk)]) == audits([str(two.pk), str(second.pk)])


def test_an_address_suppressed_already_keeps_its_reason_and_the_second_of_a_pair_does_nothing(
    personas, news, staff
):
    acme = personas.acme
    person = _person(acme, "ann@example.com", [news], staff)
    actions.do_add_suppression(acme, email="ANN@example.com", actor=staff)
    assert suppressed_already([person]) == {(acme.pk, actions.suppression_hash(person.email))}
    item = Withdrawal(person, Reason.BY_COMPLAINT, Suppression.Reason.COMPLAINT, "system")
    done = withdraw_many([item, item], actor=SYSTEM)
    assert [(d.unsubscribed, d.suppressed) for d in done] == [(1, False), (0, False)]
    assert actions.suppression_for(acme, person.email).reason == Suppression.Reason.MANUAL
    assert Subscription.objects.get(subscriber=person).status_reason == Reason.BY_COMPLAINT


def test_it_touches_no_other_workspace(personas, news, staff):
    acme, evil = personas.acme, personas.evil
    mine = _person(acme, "same@example.com", [news], staff)
    theirs = actions.do_create_subscriber(evil, email="same@example.com", actor=staff)
    withdraw_many(
        [Withdrawal(mine, Reason.BY_BOUNCE, Suppression.Reason.HARD_BOUNCE, "system")],
        actor=SYSTEM,
    )
    assert actions.suppression_for(evil, theirs.email) is None
    assert suppressed_already([theirs]) == set()


def _written(model, ids, skip=("id",)):
    names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
    return [
        tuple(row[n] for n in names)
        for row in model.objects.filter(pk__in=ids).order_by("pk").values(*names)
    ]


def test_insert_rows_writes_what_bulk_create_writes_in_chunks_with_the_ids(
    personas, news, staff, monkeypatch
):
    from django.utils.timezone import now

    from mailmarketer.audience import bulk_withdraw

    acme = personas.acme
    person = _person(acme, "rows@example.com", [news], staff)
    stamp = now()

    def suppressions(tag):
        return [
            Suppression(workspace=acme, email_hash=f"{tag}{i}", reason="complaint", note="é <n>")
            for i in range(7)
        ]

    def audits(tag):
        return [
            bulk_withdraw.audit_row(SYSTEM, acme.pk, f"test.{tag}", person, {"n": i, "é": [1]})
            for i in range(7)
        ]

    # A parameter limit of two rows per statement: chunks, and ids given back across them.
    monkeypatch.setattr(bulk_withdraw, "_max_parameters", lambda: 11)
    ours = suppressions("a")
    for s in ours:
        s.created_at = stamp
    bulk_withdraw.insert_rows(Suppression, ours, ids=True)
    theirs = Suppression.objects.bulk_create(suppressions("b"))
    for s in theirs:
        s.created_at = stamp
        s.save(update_fields=["created_at"])
    assert all(s.pk for s in ours) and len({s.pk for s in ours}) == 7
    assert [s.email_hash for s in Suppression.objects.filter(pk__in=[s.pk for s in ours])] == [
        f"a{i}" for i in range(7)
    ]
    mine = _written(Suppression, [s.pk for s in ours], skip=("id", "email_hash"))
    assert mine == _written(Suppression, [s.pk for s in theirs], skip=("id", "email_hash"))

    bulk_withdraw.insert_rows(AuditEvent, audits("x"))  # dicts: the other columns' defaults
    AuditEvent.objects.bulk_create(AuditEvent(**row) for row in audits("y"))
    skip = ("id", "at", "event")
    got = _written(AuditEvent, AuditEvent.objects.filter(event="test.x").values("pk"), skip)
    want = _written(AuditEvent, AuditEvent.objects.filter(event="test.y").values("pk"), skip)
    assert len(got) == 7 and got == want
    assert AuditEvent.objects.filter(event="test.x", at__gte=stamp).count() == 7
    assert AuditEvent.objects.get(event="test.x", new__n=3).new == {"n": 3, "é": [1]}
