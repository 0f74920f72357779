"""subscribing.subscribe_people, the one writer of memberships and consent: what it decides for
each (person, list), what it writes, and the rules every path inherits from it."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils.timezone import now
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailmarketer.audience import actions
from mailmarketer.audience.actions import ConsentSource, Reason
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription
from mailmarketer.audience.subscribing import (
    MAY_RESUBSCRIBE,
    Person,
    Result,
    Terms,
    subscribe_people,
)

IMPORT = Terms("import", Reason.BY_IMPORT, source_id="7", confirmed=True, created_as="import")


def memberships(person_email: str) -> dict[str, str]:
    sub = Subscriber.objects.get(email_key=person_email.lower())
    return dict(sub.subscriptions.values_list("mailing_list__slug", "status"))


def test_it_decides_each_person_and_list(personas, staff, news, webinars):
    member = actions.do_create_subscriber(personas.acme, email="member@example.com", actor=staff)
    actions.do_subscribe(member, [news], actor=staff, reason=Reason.BY_ADMIN)
    pending = actions.do_create_subscriber(personas.acme, email="pending@example.com", actor=staff)
    actions.do_subscribe(pending, [webinars], actor=staff, reason=Reason.BY_ADMIN)
    left = actions.do_create_subscriber(personas.acme, email="left@example.com", actor=staff)
    actions.do_subscribe(left, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(left, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    blocked = actions.do_create_subscriber(personas.acme, email="blocked@example.com", actor=staff)
    actions.do_blocklist_subscriber(blocked, actor=staff)
    actions.do_add_suppression(personas.acme, email="gone@example.com", actor=staff)
    grants = ConsentRecord.objects.filter(action="grant").count()

    people = [
        Person.of("New@example.com", "New", {"plan": "pro"}),
        Person.of("MEMBER@example.com"),  # another case: the same person
        Person.of("pending@example.com"),
        Person.of("left@example.com"),
        Person.of("blocked@example.com"),
        Person.of("Gone@Example.com"),
    ]
    with transaction.atomic():
        done = subscribe_people(personas.acme, people, [news, webinars], IMPORT, at=now())

    assert done.statuses == {news.pk: "confirmed", webinars.pk: "confirmed"}
    assert done.created == [0] and len(done.created_uuids) == 1
    new = Subscriber.objects.get(email="New@example.com")
    assert new.uuid.hex == done.created_uuids[0]
    assert (new.name, new.attributes, new.source) == ("New", {"plan": "pro"}, "import")
    assert memberships("new@example.com") == {"news": "confirmed", "webinars": "confirmed"}
    assert done.suppressed == {5: ("manual", None)}
    assert done.blocklisted == {4: blocked.uuid}
    decided = {
        position: {lid: result for lid, (result, _) in by_list.items()}
        for position, (_, _, by_list) in done.known.items()
    }
    assert decided == {
        1: {news.pk: Result.ALREADY, webinars.pk: Result.SUBSCRIBED},
        2: {news.pk: Result.SUBSCRIBED, webinars.pk: Result.CONFIRMED},
        3: {news.pk: Result.UNSUBSCRIBED_KEPT, webinars.pk: Result.SUBSCRIBED},
    }
    assert memberships("pending@example.com") == {"news": "confirmed", "webinars": "confirmed"}
    assert memberships("left@example.com") == {"news": "unsubscribed", "webinars": "confirmed"}
    assert not Subscription.objects.filter(subscriber=blocked).exclude(status="unsubscribed")
    assert not Subscriber.objects.filter(email_key="gone@example.com").exists()
    # A grant for each membership made or upgraded: 2 new + 1 + 2 + 1, none for the rest.
    assert ConsentRecord.objects.filter(action="grant").count() == grants + 6
    record = ConsentRecord.objects.filter(subscriber=new).first()
    assert (record.source_type, record.source_id, record.confirmed_at is not None) == (
        "import",
        "7",
        True,
    )


def test_it_renews_an_unsubscribed_membership_only_on_terms_that_allow_it(personas, staff, news):
    sub = actions.do_create_subscriber(personas.acme, email="left@example.com", actor=staff)
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    form = Terms("form", Reason.BY_SUBSCRIBER, source_label="Newsletter form", resubscribe=True)

    with transaction.atomic():
        done = subscribe_people(
            personas.acme, [Person.of("Left@example.com")], [news], form, at=now()
        )

    assert done.known[0][2] == {news.pk: (Result.RESUBSCRIBED, "confirmed")}
    membership = Subscription.objects.get(subscriber=sub)
    assert (membership.status, membership.status_reason, membership.unsubscribed_at) == (
        "confirmed",
        "by_subscriber",
        None,
    )
    latest = ConsentRecord.objects.filter(subscriber=sub).last()
    assert (latest.action, latest.source_type) == ("grant", "form")


@pytest.mark.parametrize("source", ["import", "api", "system"])
def test_it_refuses_terms_that_would_resubscribe_on_someone_elses_word(source):
    with pytest.raises(ValueError, match="never resubscribes"):
        Terms(source, Reason.BY_API, resubscribe=True)


def test_it_follows_each_lists_opt_in_when_the_terms_say_nothing(personas, staff, news, webinars):
    terms = Terms("api", Reason.BY_API, created_as="api")

    with transaction.atomic():
        done = subscribe_people(
            personas.acme, [Person.of("a@example.com")], [news, webinars], terms, at=now()
        )

    assert done.statuses == {news.pk: "confirmed", webinars.pk: "unconfirmed"}
    assert memberships("a@example.com") == {"news": "confirmed", "webinars": "unconfirmed"}
    pending = ConsentRecord.objects.get(mailing_list=webinars)
    assert pending.confirmed_at is None


@pytest.mark.parametrize("keep", [True, False])
def test_it_keeps_the_ip_and_browser_only_where_the_workspace_keeps_them(
    personas, staff, news, keep
):
    personas.acme.consent_store_ip = keep
    personas.acme.save(update_fields=["consent_store_ip"])
    source = ConsentSource("form", "3", "Form", ip="198.51.100.7", user_agent="Firefox/130")
    existing = actions.do_create_subscriber(personas.acme, email="old@example.com", actor=staff)

    with transaction.atomic():
        subscribe_people(
            personas.acme,
            [Person.of("new@example.com"), Person.of(existing.email)],
            [news],
            source.terms(reason=Reason.BY_SUBSCRIBER),
            at=now(),
        )

    seen = set(ConsentRecord.objects.values_list("ip", "user_agent"))
    assert seen == ({("198.51.100.7", "Firefox/130")} if keep else {(None, "")})


def test_it_leaves_unknown_people_alone_when_told_not_to_create(personas, news):
    terms = Terms("admin", Reason.BY_ADMIN)

    with transaction.atomic():
        done = subscribe_people(
            personas.acme, [Person.of("nobody@example.com")], [news], terms, at=now(), create=False
        )

    assert done.missing == [0] and not Subscriber.objects.exists()


# -- the consent ledger explains every active membership -----------------------------------------

# Every way a membership changes, each through the action a user reaches it by. All subscribing
# goes through subscribe_people, so these cover its every decision; the unsubscribes are the
# other side of the ledger.
STEPS = (
    "subscribe",  # staff, do_subscribe, no renewal
    "resubscribe",  # staff on the person's word, do_subscribe(resubscribe=True)
    "bulk_add",  # the API's bulk add, unconfirmed or confirmed
    "import",  # an import's terms, confirmed
    "unsubscribe",  # the person, from one list
    "unsubscribe_all",  # the person, from everything (suppressed)
    "confirm",  # the person clicks the confirmation link
    "blocklist",
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(STEPS),
            st.sampled_from(["ann@example.com", "ANN@example.com", "bo@example.com"]),
            st.sampled_from(["news", "webinars"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
# The sequences the rule is about, always tried first.
@example(
    steps=[
        ("subscribe", "ann@example.com", "news", False),
        ("unsubscribe", "ANN@example.com", "news", False),
        ("resubscribe", "ann@example.com", "news", False),
        ("bulk_add", "ANN@example.com", "news", True),
        ("import", "ann@example.com", "news", True),
    ]
)
@example(
    steps=[
        ("subscribe", "bo@example.com", "news", True),
        ("unsubscribe", "bo@example.com", "news", False),
        ("import", "BO@example.com", "news", True),
        ("bulk_add", "bo@example.com", "news", True),
    ]
)
@example(
    steps=[
        ("bulk_add", "bo@example.com", "webinars", False),
        ("unsubscribe_all", "bo@example.com", "webinars", False),
        ("resubscribe", "bo@example.com", "webinars", True),
        ("import", "bo@example.com", "news", True),
    ]
)
def test_it_never_subscribes_anyone_again_without_a_new_consent(
    personas, staff, news, webinars, steps
):
    """After any sequence of changes, every membership that is not unsubscribed has, as the
    latest consent record for its list, a grant or a confirmation: nobody who unsubscribed (a
    withdrawal in the ledger) is on a list again without a new grant after it, and that grant
    comes from the person or staff. Nobody whose address is suppressed or who is blocklisted is
    subscribed at all."""
    lists = {"news": news, "webinars": webinars}
    sid = transaction.savepoint()
    try:
        for step, email, slug, flag in steps:
            _apply(personas.acme, staff, step, email, lists[slug], flag)
        for membership in Subscription.objects.exclude(status="unsubscribed"):
            ledger = list(
                ConsentRecord.objects.filter(
                    subscriber_id=membership.subscriber_id,
                    mailing_list_id=membership.mailing_list_id,
                )
                .order_by("at", "id")
                .values_list("action", "source_type")
            )
            assert ledger and ledger[-1][0] in ("grant", "confirm"), (membership, ledger)
            withdrawals = [i for i, (action, _) in enumerate(ledger) if action == "withdraw"]
            if withdrawals:
                # Renewed by a grant from the person or staff, never by an import or the API.
                action, source = ledger[withdrawals[-1] + 1]
                assert action == "grant" and source in MAY_RESUBSCRIBE, ledger
            assert membership.subscriber.status == "enabled"
            assert actions.suppression_for(personas.acme, membership.subscriber.email) is None
        # One subscriber per address, whatever its case.
        assert Subscriber.objects.filter(email_key="ann@example.com").count() <= 1
    finally:
        transaction.savepoint_rollback(sid)


def _apply(workspace, staff, step, email, mailing_list, flag) -> None:
    sub = Subscriber.objects.filter(workspace=workspace, email_key=email.lower()).first()
    try:
        if step == "bulk_add":
            actions.do_bulk_add_to_list(
                mailing_list, [{"email": email}], confirmed=flag or None, actor=staff
            )
        elif step == "import":
            subscribe_people(
                workspace, [Person.of(email, "", {"n": 1})], [mailing_list], IMPORT, at=now()
            )
        elif sub is None:
            if step in ("subscribe", "resubscribe"):
                sub = actions.do_create_subscriber(workspace, email=email, actor=staff)
                actions.do_subscribe(sub, [mailing_list], actor=staff, reason=Reason.BY_ADMIN)
        elif step in ("subscribe", "resubscribe"):
            actions.do_subscribe(
                sub,
                [mailing_list],
                actor=staff,
                reason=Reason.BY_ADMIN,
                confirmed=flag or None,
                resubscribe=step == "resubscribe",
            )
        elif step == "unsubscribe":
            actions.do_unsubscribe(sub, [mailing_list], actor=staff, reason=Reason.BY_SUBSCRIBER)
        elif step == "unsubscribe_all":
            actions.do_unsubscribe(sub, actor=staff, reason=Reason.BY_SUBSCRIBER, suppress_all=True)
        elif step == "confirm":
            pending = Subscription.objects.filter(
                subscriber=sub, mailing_list=mailing_list, status="unconfirmed"
            ).first()
            if pending:
                actions.do_confirm_subscription(pending, actor=staff, reason=Reason.BY_SUBSCRIBER)
        elif step == "blocklist":
            actions.do_blocklist_subscriber(sub, actor=staff)
    except (actions.Suppressed, actions.Blocklisted):
        pass


def test_it_knows_a_person_even_when_given_no_list(personas, staff):
    sub = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)

    assert actions.do_subscribe(sub, [], actor=staff, reason=Reason.BY_ADMIN) == []
    assert not Subscription.objects.exists() and not ConsentRecord.objects.exists()
