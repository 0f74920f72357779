"""Property: whatever people and staff do, in any order (sign up, confirm, unsubscribe from a
list or from everything, be erased, sign up again, time passing), nobody is mailable for
marketing without a current consent, and every consent record a form wrote points at the words
the page showed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.emails import suppression_hash
from mailmarketer.audience.models import (
    ConsentNotice,
    ConsentRecord,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.audience.tokens import make_manage_token
from mailmarketer.signup.actions import do_create_form
from mailmarketer.signup.models import Confirmation, Submission
from mailmarketer.signup.tokens import ERASE, make_confirm_token, make_self_service_token

from .support import form_url, notice_shown, post

pytestmark = pytest.mark.django_db
PEOPLE = ("ann@example.com", "bo@example.com")
STAFF = Actor.system("test staff")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(PEOPLE), st.integers(0, 1)),
        st.tuples(st.just("confirm"), st.sampled_from(PEOPLE)),
        st.tuples(
            st.just("unsubscribe"),
            st.sampled_from(PEOPLE),
            st.sampled_from(["news", "weekly", "monthly", None]),
        ),
        st.tuples(st.just("stop_all"), st.sampled_from(PEOPLE)),
        st.tuples(st.just("erase"), st.sampled_from(PEOPLE)),
        # The person themselves, through the preference centre's mailed link.
        st.tuples(st.just("self_erase"), st.sampled_from(PEOPLE)),
        st.tuples(st.just("manage_stop_all"), st.sampled_from(PEOPLE)),
        st.tuples(st.just("wait")),
    ),
    min_size=1,
    max_size=12,
)


def subscriber(workspace, email):
    return Subscriber.objects.filter(workspace=workspace, email=email).first()


def run(step, workspace, forms):
    kind, *args = step
    if kind == "submit":
        email, which = args
        post(forms[which], {"email": email, "consent": "1"})
    elif kind == "confirm":
        pending = (
            Confirmation.objects.filter(email_hash=suppression_hash(args[0]))
            .order_by("-pk")
            .first()
        )
        if pending:
            Client().post(f"/f/c/{make_confirm_token(pending.pk)}")
    elif kind in ("unsubscribe", "stop_all", "erase", "self_erase", "manage_stop_all"):
        person = subscriber(workspace, args[0])
        if person is None:
            return
        if kind == "self_erase":
            path = f"/f/m/erase/{make_self_service_token(ERASE, workspace.pk, person.pk)}"
            client = Client(enforce_csrf_checks=True)
            client.get(path)
            client.post(path, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
        elif kind == "manage_stop_all":
            path = f"/f/m/{make_manage_token(workspace.pk, person.pk)}"
            client = Client(enforce_csrf_checks=True)
            client.get(path)
            client.post(
                path,
                {"action": "everything", "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
            )
        elif kind == "erase":
            audience.do_erase_subscriber(person, actor=STAFF)
        elif kind == "stop_all":
            audience.do_unsubscribe(
                person, actor=STAFF, reason=Reason.BY_SUBSCRIBER, suppress_all=True
            )
        else:
            lists = None if args[1] is None else MailingList.objects.filter(slug=args[1])
            audience.do_unsubscribe(person, lists, actor=STAFF, reason=Reason.BY_SUBSCRIBER)
    else:  # a day and more passes: the mail and submission limits start over
        later = timedelta(hours=25)
        for model in (Confirmation, Submission):
            for row in model.objects.all():
                model.objects.filter(pk=row.pk).update(created_at=row.created_at - later)


def mailable(workspace):
    """(subscriber, list) pairs a campaign would mail, by the planner's rule: confirmed, or
    unconfirmed on a single opt-in list; the person enabled and not suppressed."""
    suppressed = set(Suppression.objects.values_list("email_hash", flat=True))
    pairs = []
    for sub in Subscription.objects.select_related("subscriber", "mailing_list"):
        single = sub.mailing_list.optin == MailingList.OptIn.SINGLE
        if sub.status == "confirmed" or (sub.status == "unconfirmed" and single):
            person = sub.subscriber
            if person.status == "enabled" and suppression_hash(person.email) not in suppressed:
                pairs.append((sub, person))
    return pairs


def check(workspace, shown: set[str]):
    for sub, person in mailable(workspace):
        records = list(
            ConsentRecord.objects.filter(subscriber=person, mailing_list=sub.mailing_list)
        )
        assert records, f"{person.email} mailable on {sub.mailing_list.slug} without consent"
        last = records[-1]
        assert last.action in ("grant", "confirm"), (person.email, sub.mailing_list.slug)
        if sub.mailing_list.optin == MailingList.OptIn.DOUBLE:
            assert last.action == "confirm" or last.confirmed_at is not None
    # An erased address that signed up again is on no list until it confirms.
    erased = set(Suppression.objects.filter(reason="erased").values_list("email_hash", flat=True))
    for sub in Subscription.objects.exclude(status="unsubscribed").select_related("subscriber"):
        assert suppression_hash(sub.subscriber.email) not in erased, sub.subscriber.email
    for record in ConsentRecord.objects.filter(source_type="form").select_related("notice"):
        notice = record.notice
        assert notice.text in shown
        assert notice.sha256 == ConsentNotice.hash_text(notice.text)


def test_it_never_makes_anyone_mailable_without_a_current_consent(personas):
    acme = personas.acme
    news = audience.do_create_list(acme, name="News", slug="news", actor=STAFF)
    weekly = audience.do_create_list(
        acme, name="Weekly", slug="weekly", optin="double", actor=STAFF
    )
    monthly = audience.do_create_list(
        acme, name="Monthly", slug="monthly", optin="double", actor=STAFF
    )
    forms = [
        do_create_form(
            acme,
            name="A",
            slug="a",
            title="A",
            lists=[news, weekly],
            notice_text="News and weekly, please.\nThank you.",
            actor=STAFF,
        ),
        do_create_form(
            acme,
            name="B",
            slug="b",
            title="B",
            lists=[weekly, monthly],
            notice_text="Weekly and monthly — ok.",
            actor=STAFF,
        ),
    ]
    shown = {notice_shown(Client().get(form_url(f))) for f in forms}

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(sequence=steps)
    def sequence_holds(sequence):
        with transaction.atomic():
            for step in sequence:
                run(step, acme, forms)
                check(acme, shown)
            transaction.set_rollback(True)

    sequence_holds()
