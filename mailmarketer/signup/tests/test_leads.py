"""Evaluation requests: a submission makes a lead (product asked about, company, message), the
assignee or the chosen recipients hear of it by a mail with no personal data in its subject, the
lead joins lists only with the box ticked, and staff move it along its statuses (one writer,
each change in its history) on pages that mask the person without personal-data permission."""

from __future__ import annotations

import pytest
from django.test import Client

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription
from mailmarketer.lib import outbox
from mailmarketer.lib.worker import run_task_one
from mailmarketer.signup import leads
from mailmarketer.signup.fields import FormError
from mailmarketer.signup.models import Lead, LeadEvent, Submission
from mailmarketer.signup.tokens import EMBED, make_form_token
from mailmarketer.testing import client_for

from .kinds_support import evaluation_form
from .support import post

ANN = {
    "email": "ann@example.com",
    "name": "Ann Example",
    "company": "Beans Ltd",
    "product": "Pro plan",
    "message": "We roast 2 t a week.\nCan we try it?",
}


@pytest.fixture
def trial(personas, staff, news):
    return evaluation_form(personas.acme, staff, lists=[news], assignee=personas.bob.pk)


def submit(form, data=None, *, callbacks):
    with callbacks(execute=True):
        response = post(form, ANN if data is None else data)
    while run_task_one():
        pass
    return response


def mails():
    entries, _ = outbox.list_messages()
    return entries


def test_it_makes_a_lead_and_tells_the_assignee_without_personal_data_in_the_subject(
    trial, personas, django_capture_on_commit_callbacks
):
    response = submit(trial, callbacks=django_capture_on_commit_callbacks)
    assert response.status_code == 200, response.content.decode()[:3000]
    assert "we have your request" in response.content.decode()
    lead = Lead.objects.get()
    ann = Subscriber.objects.get(email="ann@example.com")
    assert (lead.subscriber, lead.product, lead.company, lead.status) == (
        ann,
        "Pro plan",
        "Beans Ltd",
        "new",
    )
    assert lead.message == "We roast 2 t a week.\nCan we try it?"
    assert lead.assignee == personas.bob
    assert [(e.field, e.new) for e in LeadEvent.objects.all()] == [("created", "new")]
    [mail] = mails()
    assert mail.to == "bob@acme.test"
    for personal in ("ann", "Ann", "Beans", "example.com"):
        assert personal not in mail.subject
    assert f"/app/acme/leads/{lead.pk}/" in outbox.get_message(mail.id).as_string()
    assert AuditEvent.objects.filter(event="lead.created").count() == 1


def test_it_keeps_the_company_typed_on_the_lead_not_the_one_on_record(
    trial, personas, staff, django_capture_on_commit_callbacks
):
    from mailmarketer.audience import actions as audience

    audience.do_create_subscriber(
        personas.acme, email="ann@example.com", attributes={"company": "Old Co"}, actor=staff
    )
    submit(trial, callbacks=django_capture_on_commit_callbacks)
    assert Lead.objects.get().company == "Beans Ltd"
    assert Subscriber.objects.get().attributes["company"] == "Old Co"  # never overwritten


def test_it_tells_the_chosen_recipients_when_nobody_is_assigned(
    personas, staff, django_capture_on_commit_callbacks
):
    form = evaluation_form(personas.acme, staff, slug="t2", recipients=[personas.carol.pk])
    submit(form, callbacks=django_capture_on_commit_callbacks)
    assert [m.to for m in mails()] == ["carol@acme.test"]


def test_it_tells_the_owners_when_nobody_is_assigned_or_chosen(
    personas, staff, django_capture_on_commit_callbacks
):
    form = evaluation_form(personas.acme, staff, slug="t3")
    submit(form, callbacks=django_capture_on_commit_callbacks)
    assert [m.to for m in mails()] == ["alice@acme.test"]


def test_it_puts_the_lead_on_lists_only_when_the_box_is_ticked(
    trial, news, django_capture_on_commit_callbacks
):
    submit(trial, callbacks=django_capture_on_commit_callbacks)
    ann = Subscriber.objects.get(email="ann@example.com")
    assert not Subscription.objects.filter(subscriber=ann).exists()
    assert not ConsentRecord.objects.exists()
    assert Submission.objects.get().outcome == Submission.Outcome.REQUESTED
    submit(trial, {**ANN, "consent": "1"}, callbacks=django_capture_on_commit_callbacks)
    assert Subscription.objects.get(subscriber=ann).mailing_list == news
    assert ConsentRecord.objects.get(subscriber=ann).notice == trial.notice
    assert Lead.objects.count() == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"product": "Enterprise"}, "product"),  # not offered
        ({"product": ""}, "product"),
        ({"message": "x" * 2001}, "message"),
        ({"message": "bell \x07 rings"}, "message"),
        ({"company": ""}, "company"),
        ({"budget": "1"}, "budget"),
    ],
)
def test_it_names_the_field_it_refuses_and_stores_nothing(
    trial, change, field, django_capture_on_commit_callbacks
):
    data = {k: v for k, v in {**ANN, **change}.items() if v != "" or k == "product"}
    page = submit(trial, data, callbacks=django_capture_on_commit_callbacks)
    assert page.status_code == 422
    assert 'class="errorlist"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            "/f/acme/trial.json",
            {**data, "form_token": make_form_token(trial.pk, EMBED)},
            content_type="application/json",
        )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Lead.objects.exists()
    assert not Subscriber.objects.exists()
    assert not Submission.objects.exists()
    assert mails() == []


def test_it_offers_the_products_on_the_page(trial):
    page = Client().get("/f/acme/trial").content.decode()
    assert "<option>Starter</option>" in page and "<option>Pro plan</option>" in page
    assert 'name="message"' in page


# -- the one writer --------------------------------------------------------------------------


@pytest.fixture
def lead(trial, django_capture_on_commit_callbacks):
    submit(trial, callbacks=django_capture_on_commit_callbacks)
    return Lead.objects.get()


def test_it_moves_a_lead_only_along_its_transitions(lead, staff):
    with pytest.raises(FormError, match="cannot become qualified") as refused:
        leads.do_update_lead(lead, status="qualified", actor=staff)
    assert refused.value.field == "status"
    with pytest.raises(FormError, match="unknown status"):
        leads.do_update_lead(lead, status="won", actor=staff)
    leads.do_update_lead(lead, status="contacted", actor=staff)
    leads.do_update_lead(lead, status="qualified", actor=staff)
    with pytest.raises(FormError, match="final"):
        leads.do_update_lead(lead, status="disqualified", actor=staff)
    lead.refresh_from_db()
    assert lead.status == "qualified"
    history = [(e.field, e.old, e.new, e.actor) for e in LeadEvent.objects.order_by("pk")]
    assert history[1:] == [
        ("status", "new", "contacted", "alice@acme.test"),
        ("status", "contacted", "qualified", "alice@acme.test"),
    ]


def test_it_assigns_only_members_and_keeps_each_change(lead, staff, personas):
    with pytest.raises(FormError) as refused:
        leads.do_update_lead(lead, assignee=personas.mallory.pk, actor=staff)
    assert refused.value.field == "assignee"
    leads.do_update_lead(lead, assignee=personas.carol.pk, notes="Call on Monday", actor=staff)
    lead.refresh_from_db()
    assert (lead.assignee, lead.notes) == (personas.carol, "Call on Monday")
    changes = {e.field: (e.old, e.new) for e in LeadEvent.objects.exclude(field="created")}
    assert changes == {
        "assignee": ("bob@acme.test", "carol@acme.test"),
        "notes": ("", "Call on Monday"),
    }
    audit = AuditEvent.objects.get(event="lead.updated")
    assert "Monday" not in str(audit.new)


# -- pages -----------------------------------------------------------------------------------


def test_it_masks_the_person_for_an_analyst_and_audits_an_unmasked_look(lead, personas):
    masked = client_for(personas.carol).get(f"/app/acme/leads/{lead.pk}/").content.decode()
    assert "ann@example.com" not in masked and "Ann Example" not in masked
    assert "We roast" not in masked
    assert "Pro plan" in masked
    assert not AuditEvent.objects.filter(event="lead.viewed").exists()
    shown = client_for(personas.alice).get(f"/app/acme/leads/{lead.pk}/").content.decode()
    assert "ann@example.com" in shown and "We roast" in shown
    assert AuditEvent.objects.filter(event="lead.viewed").count() == 1
    listed = client_for(personas.carol).get("/app/acme/leads/").content.decode()
    assert "ann@example.com" not in listed and "Beans Ltd" in listed


def test_it_changes_a_lead_from_its_page_and_refuses_a_wrong_move(lead, bob_client):
    wrong = bob_client.post(f"/app/acme/leads/{lead.pk}/update/", {"status": "qualified"})
    assert wrong.status_code == 400
    assert "cannot become qualified" in wrong.content.decode()
    done = bob_client.post(f"/app/acme/leads/{lead.pk}/update/", {"status": "contacted"})
    assert done.status_code == 302
    lead.refresh_from_db()
    assert lead.status == "contacted"
    assert lead.assignee is not None  # not sent: not changed
    page = bob_client.get(f"/app/acme/leads/{lead.pk}/").content.decode()
    assert "contacted" in page and "bob@acme.test" in page


def test_it_filters_the_leads(lead, staff, bob_client, personas):
    leads.do_update_lead(lead, status="contacted", actor=staff)
    assert (
        f"/leads/{lead.pk}/" in bob_client.get("/app/acme/leads/?status=contacted").content.decode()
    )
    for query in (
        "status=new",
        "product=Starter",
        "assignee=none",
        f"assignee={personas.carol.pk}",
        "since=2999-01-01",
        "until=2000-01-01",
    ):
        page = bob_client.get(f"/app/acme/leads/?{query}").content.decode()
        assert f"/leads/{lead.pk}/" not in page, query
    bad = bob_client.get("/app/acme/leads/?since=yesterday&status=won")
    assert bad.status_code == 200
    assert "YYYY-MM-DD" in bad.content.decode()


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        ("carol", "get", "/app/acme/leads/", 200),
        ("carol", "get", "/app/acme/leads/{id}/", 200),
        ("carol", "post", "/app/acme/leads/{id}/update/", 403),
        ("bob", "post", "/app/acme/leads/{id}/update/", 302),
        ("mallory", "get", "/app/acme/leads/{id}/", 404),
        ("mallory", "post", "/app/acme/leads/{id}/update/", 404),
        ("mallory", "get", "/app/evil/leads/{id}/", 404),
        ("carol", "get", "/app/acme/forms/{form}/evaluation/", 403),
    ],
)
def test_it_guards_the_lead_pages_by_role(lead, personas, who, method, path, status):
    client = client_for(getattr(personas, who))
    response = getattr(client, method)(
        path.format(id=lead.pk, form=lead.form_id), {"status": "contacted"}
    )
    assert response.status_code == status
    lead.refresh_from_db()
    assert lead.status == ("contacted" if status == 302 else "new")


def test_it_sets_up_an_evaluation_form_on_its_page(bob_client, trial, personas):
    response = bob_client.post(
        f"/app/acme/forms/{trial.pk}/evaluation/",
        {"products": "Basic\nTeam", "assignee": "", "recipients": [personas.alice.pk]},
    )
    assert response.status_code == 302
    setup = leads.setup_of(trial)
    assert (setup.products, setup.assignee, setup.recipients) == (
        ["Basic", "Team"],
        None,
        [personas.alice.pk],
    )
    bad = bob_client.post(
        f"/app/acme/forms/{trial.pk}/evaluation/",
        {"products": "A", "assignee": str(personas.mallory.pk)},
    )
    assert bad.status_code == 400
