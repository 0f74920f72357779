import contextlib

import pytest
from django.utils.timezone import now
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import ConsentSource, Reason
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription, Suppression
from mailmarketer.audience.subscribing import Person, Terms, subscribe_people


def test_it_creates_a_subscriber_with_a_normalised_address(personas, staff):
    sub = actions.do_create_subscriber(personas.acme, email=" Ann@Example.COM ", actor=staff)
    assert sub.email == "Ann@example.com"
    with pytest.raises(actions.Conflict):
        actions.do_create_subscriber(personas.acme, email="Ann@EXAMPLE.com", actor=staff)
    # Another workspace may hold the same address: tenants never see each other.
    other = actions.do_create_subscriber(personas.evil, email="Ann@example.com", actor=staff)
    assert other.workspace == personas.evil


def test_it_rejects_an_invalid_address_with_its_reason(personas, staff):
    with pytest.raises(actions.ActionError, match="invalid email address") as info:
        actions.do_create_subscriber(personas.acme, email="not-an-address", actor=staff)
    assert info.value.code == "invalid_email"
    assert not Subscriber.objects.exists()


def test_it_never_names_the_person_in_the_audit_log(personas, staff, news):
    sub = actions.do_create_subscriber(
        personas.acme, email="secret.person@example.com", name="Secret Person", actor=staff
    )
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_update_subscriber(sub, name="Other Name", attributes={"city": "Oslo"}, actor=staff)
    actions.do_unsubscribe(sub, actor=staff, reason=Reason.BY_ADMIN)
    for row in AuditEvent.objects.filter(object_type="subscriber"):
        text = f"{row.object_repr} {row.old} {row.new}"
        assert "secret.person" not in text and "Person" not in text and "Oslo" not in text
        assert row.object_id == str(sub.pk)


def test_it_follows_each_lists_opt_in(personas, staff, news, webinars):
    sub = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)
    outcomes = actions.do_subscribe(sub, [news, webinars], actor=staff, reason=Reason.BY_ADMIN)
    assert [o.result for o in outcomes] == ["subscribed", "pending_confirmation"]
    pending = Subscription.objects.get(subscriber=sub, mailing_list=webinars)
    assert pending.status == "unconfirmed"
    assert actions.do_confirm_subscription(pending, actor=staff, reason=Reason.BY_SUBSCRIBER)
    pending.refresh_from_db()
    assert pending.status == "confirmed" and pending.confirmed_at is not None
    actions_seen = list(
        ConsentRecord.objects.filter(subscriber=sub).values_list("purpose", "action")
    )
    assert actions_seen == [
        ("email:news", "grant"),
        ("email:webinars", "grant"),
        ("email:webinars", "confirm"),
    ]


def test_it_keeps_the_notice_text_and_source_with_each_grant(personas, staff, news):
    notice = actions.notice_for_text(
        personas.acme, "Newsletter form", "Send me news. Unsubscribe any time."
    )
    again = actions.notice_for_text(
        personas.acme, "Newsletter form", "Send me news. Unsubscribe any time."
    )
    newer = actions.notice_for_text(personas.acme, "Newsletter form", "Send me weekly news.")
    assert again == notice and (notice.version, newer.version) == (1, 2)
    sub = actions.do_create_subscriber(personas.acme, email="b@example.com", actor=staff)
    source = ConsentSource(
        "form", "7", "Newsletter form", ip="198.51.100.4", user_agent="Firefox/130"
    )
    actions.do_subscribe(
        sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER, source=source, notice=notice
    )
    record = ConsentRecord.objects.get(subscriber=sub)
    assert record.notice.text == "Send me news. Unsubscribe any time."
    assert record.notice.sha256 == notice.sha256
    assert (record.source_type, record.ip, record.user_agent) == (
        "form",
        "198.51.100.4",
        "Firefox/130",
    )


def test_it_drops_ip_and_browser_when_the_workspace_says_so(personas, staff, news):
    personas.acme.consent_store_ip = False
    personas.acme.save()
    sub = actions.do_create_subscriber(personas.acme, email="c@example.com", actor=staff)
    sub.workspace.refresh_from_db()
    source = ConsentSource("form", "1", "f", ip="198.51.100.4", user_agent="Firefox/130")
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER, source=source)
    record = ConsentRecord.objects.get(subscriber=sub)
    assert (record.ip, record.user_agent) == (None, "")


def test_it_refuses_to_rewrite_the_consent_ledger(personas, staff, news):
    sub = actions.do_create_subscriber(personas.acme, email="d@example.com", actor=staff)
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    record = ConsentRecord.objects.get(subscriber=sub)
    record.action = "withdraw"
    with pytest.raises(PermissionError):
        record.save()


def test_it_leaves_unsubscribed_members_alone_unless_resubscribing(personas, staff, news):
    sub = actions.do_create_subscriber(personas.acme, email="e@example.com", actor=staff)
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER)
    outcome = actions.do_subscribe(
        sub, [news], actor=staff, reason=Reason.BY_IMPORT, confirmed=True
    )
    assert outcome[0].result == "unsubscribed_kept"
    assert Subscription.objects.get(subscriber=sub).status == "unsubscribed"
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER, resubscribe=True)
    assert Subscription.objects.get(subscriber=sub).status == "confirmed"


def test_it_unsubscribes_everything_when_blocklisting(personas, staff, news, webinars):
    sub = actions.do_create_subscriber(personas.acme, email="f@example.com", actor=staff)
    actions.do_subscribe(sub, [news, webinars], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_blocklist_subscriber(sub, actor=staff)
    assert set(Subscription.objects.filter(subscriber=sub).values_list("status", flat=True)) == {
        "unsubscribed"
    }
    with pytest.raises(actions.Blocklisted):
        actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN, resubscribe=True)


def test_it_suppresses_on_unsubscribe_from_everything(personas, staff, news):
    sub = actions.do_create_subscriber(personas.acme, email="g@example.com", actor=staff)
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(sub, actor=staff, reason=Reason.BY_SUBSCRIBER, suppress_all=True)
    assert Suppression.objects.get(workspace=personas.acme).reason == "unsubscribed_all"


def test_it_erases_a_person_and_keeps_only_the_hash(personas, staff, news):
    sub = actions.do_create_subscriber(personas.acme, email="h@example.com", name="H", actor=staff)
    actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_erase_subscriber(sub, actor=staff)
    assert not Subscriber.objects.filter(email="h@example.com").exists()
    assert not ConsentRecord.objects.exists() and not Subscription.objects.exists()
    suppression = Suppression.objects.get(workspace=personas.acme)
    assert suppression.reason == "erased" and "h@example" not in suppression.email_hash
    with pytest.raises(actions.Suppressed):
        actions.do_create_subscriber(personas.acme, email="H@EXAMPLE.COM", actor=staff)


def test_it_refuses_suppressed_addresses_on_email_change(personas, staff):
    actions.do_add_suppression(personas.acme, email="bounced@example.com", actor=staff)
    sub = actions.do_create_subscriber(personas.acme, email="i@example.com", actor=staff)
    with pytest.raises(actions.Suppressed):
        actions.do_update_subscriber(sub, email="Bounced@example.com", actor=staff)
    sub.refresh_from_db()
    assert sub.email == "i@example.com"


# Every path that adds or subscribes a person, as (name, callable(workspace, email, list)).
def _create(ws, email, lst, actor):
    actions.do_create_subscriber(ws, email=email, actor=actor)


def _subscribe_existing(ws, email, lst, actor):
    sub = Subscriber.objects.get(workspace=ws, email=email)
    actions.do_subscribe(
        sub, [lst], actor=actor, reason=Reason.BY_ADMIN, confirmed=True, resubscribe=True
    )


def _change_email(ws, email, lst, actor):
    sub = Subscriber.objects.create(workspace=ws, email="placeholder@example.org")
    actions.do_update_subscriber(sub, email=email, actor=actor)


def _confirm_pending(ws, email, lst, actor):
    sub = Subscriber.objects.get(workspace=ws, email=email)
    subscription = Subscription.objects.get(subscriber=sub)
    actions.do_confirm_subscription(subscription, actor=actor, reason=Reason.BY_SUBSCRIBER)


def _bulk_add(ws, email, lst, actor):
    actions.do_bulk_add_to_list(lst, [{"email": email}], confirmed=True, actor=actor)


def _import(ws, email, lst, actor):
    # What an import's chunk calls (importing/pipeline.py), with an import's terms.
    terms = Terms("import", Reason.BY_IMPORT, confirmed=True, created_as="import")
    subscribe_people(ws, [Person.of(email)], [lst], terms, at=now())


def _form(ws, email, lst, actor):
    # What a sign-up form will call: the person's own consent, renewing a membership.
    terms = Terms("form", Reason.BY_SUBSCRIBER, confirmed=True, resubscribe=True)
    subscribe_people(ws, [Person.of(email)], [lst], terms, at=now())


# Every caller of subscribing.subscribe_people, the one writer of memberships, and every other
# action that stores an address or confirms a membership.
PATHS = {
    "create": _create,
    "subscribe": _subscribe_existing,
    "change_email": _change_email,
    "confirm": _confirm_pending,
    "bulk_add": _bulk_add,
    "import": _import,
    "form": _form,
}
# Those that find the person by their address, and so may be given another spelling of it.
BY_ADDRESS = {"create", "change_email", "bulk_add", "import", "form"}

local = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,15}", fullmatch=True).filter(
    lambda s: ".." not in s and not s.endswith(".")
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    local=local,
    upper=st.booleans(),
    reason=st.sampled_from(["manual", "erase", "unsubscribed_all", "hard_bounce"]),
    path=st.sampled_from(sorted(PATHS)),
)
def test_it_never_resubscribes_a_suppressed_or_erased_address(
    personas, staff, news, local, upper, reason, path
):
    from django.db import transaction

    address = f"{local}@example.com"
    later = address.upper() if upper else address
    sid = transaction.savepoint()
    try:
        sub = actions.do_create_subscriber(personas.acme, email=address, actor=staff)
        actions.do_subscribe(sub, [news], actor=staff, reason=Reason.BY_ADMIN, confirmed=False)
        Subscription.objects.filter(subscriber=sub).update(status="unconfirmed")
        if reason == "erase":
            actions.do_erase_subscriber(sub, actor=staff)
        elif reason == "unsubscribed_all":
            actions.do_unsubscribe(sub, actor=staff, reason=Reason.BY_SUBSCRIBER, suppress_all=True)
            Subscription.objects.filter(subscriber=sub).update(status="unconfirmed")
        else:
            actions.do_add_suppression(personas.acme, email=address, reason=reason, actor=staff)
        before = set(Subscription.objects.values_list("id", "status"))
        with contextlib.suppress(
            actions.Suppressed, Subscriber.DoesNotExist, Subscription.DoesNotExist
        ):
            PATHS[path](personas.acme, later if path in BY_ADDRESS else address, news, staff)
        assert set(Subscription.objects.values_list("id", "status")) == before
        assert not Subscription.objects.filter(status="confirmed").exists()
        assert (
            not Subscriber.objects.filter(workspace=personas.acme, email__iexact=later)
            .exclude(pk=getattr(sub, "pk", None))
            .exists()
        )
    finally:
        transaction.savepoint_rollback(sid)
