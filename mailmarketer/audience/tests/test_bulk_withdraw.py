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
