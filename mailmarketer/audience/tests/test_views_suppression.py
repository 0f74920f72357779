"""The suppression list page: entries (hash start, reason, note, date) in keyset pages, adding
an address by hand (only its hash is kept), checking an address, removing an entry after
confirming; hashes and notes hidden from roles that do not see personal data."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.emails import suppression_hash
from mailmarketer.audience.models import Subscriber, Suppression


def url(name, ws="acme", **kwargs):
    return reverse(name, kwargs={"ws": ws, **kwargs})


@pytest.fixture
def entry(personas, staff):
    return actions.do_add_suppression(
        personas.acme, email="Blocked@Example.com", note="ticket 4711", actor=staff
    )


def test_it_lists_entries_by_hash_reason_note_and_date(alice_client, entry):
    response = alice_client.get(url("audience-suppression"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"<code>{entry.email_hash[:12]}…</code>" in html
    assert "Added by staff" in html and "ticket 4711" in html
    assert "Blocked@" not in html and "blocked@" not in html


def test_it_hides_hashes_and_notes_from_an_analyst(carol_client, entry):
    response = carol_client.get(url("audience-suppression"))
    assert response.status_code == 200
    html = response.content.decode()
    assert entry.email_hash[:6] not in html and "ticket 4711" not in html
    assert "Added by staff" in html and "(hidden)" in html
    # No forms for adding, checking or removing.
    assert 'name="add-email"' not in html and 'name="check-email"' not in html
    assert url("audience-suppression-remove", suppression_id=entry.pk) not in html


def test_it_pages_through_entries(alice_client, personas, staff, monkeypatch):
    from mailmarketer.audience import views_suppression

    monkeypatch.setattr(views_suppression, "PAGE_SIZE", 2)
    made = [
        actions.do_add_suppression(personas.acme, email=f"s{i}@example.com", actor=staff)
        for i in range(3)
    ]
    first = alice_client.get(url("audience-suppression")).content.decode()
    assert made[2].email_hash[:12] in first and made[1].email_hash[:12] in first
    assert made[0].email_hash[:12] not in first
    link = re.search(r'<a href="(\?before=\d+)" rel="next">', first).group(1)
    second = alice_client.get(url("audience-suppression") + link).content.decode()
    assert made[0].email_hash[:12] in second and made[2].email_hash[:12] not in second
    assert 'rel="next"' not in second
    bad = alice_client.get(url("audience-suppression"), {"before": "x"})
    assert bad.status_code == 400 and "page link is broken" in bad.content.decode()


def test_it_hides_the_suppression_list_from_another_workspace(mallory_client, entry):
    assert mallory_client.get(url("audience-suppression")).status_code == 404
    html = mallory_client.get(url("audience-suppression", ws="evil")).content.decode()
    assert entry.email_hash[:12] not in html and "ticket 4711" not in html


# -- adding --------------------------------------------------------------------------------------


def test_it_adds_an_address_keeping_only_its_hash(bob_client, personas):
    response = bob_client.post(
        url("audience-suppression-add"),
        {"add-email": " Someone@EXAMPLE.com ", "add-reason": "complaint", "add-note": "by phone"},
    )
    assert response.status_code == 302
    row = Suppression.objects.get(workspace=personas.acme)
    assert row.email_hash == suppression_hash("someone@example.com")
    assert (row.reason, row.note) == ("complaint", "by phone")
    event = AuditEvent.objects.get(event="suppression.added")
    assert "someone" not in f"{event.object_repr} {event.new}".lower()
    # The address can no longer be added as a subscriber.
    refused = bob_client.post(
        url("audience-subscriber-create"), {"add-email": "someone@example.com"}
    )
    assert refused.status_code == 409
    assert not Subscriber.objects.exists()


def test_it_refuses_an_invalid_or_already_suppressed_address(bob_client, entry):
    response = bob_client.post(
        url("audience-suppression-add"), {"add-email": "nope", "add-reason": "manual"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "invalid email address" in html
    assert re.search(r'name="add-email"[^>]*aria-invalid="true"', html)
    response = bob_client.post(
        url("audience-suppression-add"),
        {"add-email": "blocked@example.com", "add-reason": "manual"},
    )
    assert response.status_code == 409
    assert "already suppressed" in response.content.decode()
    assert Suppression.objects.count() == 1


def test_it_does_not_let_staff_claim_an_erasure(bob_client):
    response = bob_client.post(
        url("audience-suppression-add"), {"add-email": "a@example.com", "add-reason": "erased"}
    )
    assert response.status_code == 400
    assert not Suppression.objects.exists()


def test_it_forbids_an_analyst_to_add(carol_client):
    response = carol_client.post(
        url("audience-suppression-add"), {"add-email": "a@example.com", "add-reason": "manual"}
    )
    assert response.status_code == 403
    assert not Suppression.objects.exists()


def test_it_keeps_mallory_from_adding_to_acme(mallory_client, personas):
    data = {"add-email": "a@example.com", "add-reason": "manual"}
    assert mallory_client.post(url("audience-suppression-add"), data).status_code == 404
    assert not Suppression.objects.filter(workspace=personas.acme).exists()


# -- checking ------------------------------------------------------------------------------------


def test_it_checks_whether_an_address_is_suppressed(alice_client, entry):
    response = alice_client.post(
        url("audience-suppression-check"), {"check-email": "BLOCKED@example.com"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "BLOCKED@example.com is suppressed</strong> (added by staff" in html
    response = alice_client.post(
        url("audience-suppression-check"), {"check-email": "free@example.com"}
    )
    assert "free@example.com is not suppressed." in response.content.decode()
    response = alice_client.post(url("audience-suppression-check"), {"check-email": "free@"})
    assert response.status_code == 400
    assert "invalid email address" in response.content.decode()


def test_it_does_not_check_addresses_by_get(alice_client, entry):
    response = alice_client.get(url("audience-suppression-check"), {"check-email": "a@example.com"})
    assert response.status_code == 405


def test_it_forbids_an_analyst_to_check_an_address(carol_client, entry):
    response = carol_client.post(
        url("audience-suppression-check"), {"check-email": "blocked@example.com"}
    )
    assert response.status_code == 403
    assert "is suppressed" not in response.content.decode()


def test_it_checks_only_inside_the_workspace(mallory_client, entry):
    assert (
        mallory_client.post(
            url("audience-suppression-check"), {"check-email": "blocked@example.com"}
        ).status_code
        == 404
    )
    response = mallory_client.post(
        url("audience-suppression-check", ws="evil"), {"check-email": "blocked@example.com"}
    )
    assert response.status_code == 200
    assert "blocked@example.com is not suppressed." in response.content.decode()


# -- removing ------------------------------------------------------------------------------------


def test_it_asks_before_removing_and_removes_on_post(bob_client, entry):
    page = bob_client.get(url("audience-suppression-remove", suppression_id=entry.pk))
    assert page.status_code == 200
    assert "may be added, imported and mailed again" in page.content.decode()
    assert Suppression.objects.filter(pk=entry.pk).exists()
    response = bob_client.post(url("audience-suppression-remove", suppression_id=entry.pk))
    assert response.status_code == 302
    assert not Suppression.objects.filter(pk=entry.pk).exists()
    assert (
        AuditEvent.objects.filter(event="suppression.removed", object_id=str(entry.pk)).count() == 1
    )


def test_it_warns_before_removing_what_an_erasure_left(bob_client, personas, staff):
    sub = actions.do_create_subscriber(personas.acme, email="erase.me@example.com", actor=staff)
    actions.do_erase_subscriber(sub, actor=staff)
    left = Suppression.objects.get(reason="erased")
    html = bob_client.get(
        url("audience-suppression-remove", suppression_id=left.pk)
    ).content.decode()
    assert "This entry was left by an erasure" in html


def test_it_forbids_an_analyst_to_remove(carol_client, entry):
    assert (
        carol_client.get(url("audience-suppression-remove", suppression_id=entry.pk)).status_code
        == 403
    )
    assert (
        carol_client.post(url("audience-suppression-remove", suppression_id=entry.pk)).status_code
        == 403
    )
    assert Suppression.objects.filter(pk=entry.pk).exists()


def test_it_keeps_acme_entries_out_of_mallorys_workspace(mallory_client, entry):
    for ws in ("acme", "evil"):
        target = url("audience-suppression-remove", ws=ws, suppression_id=entry.pk)
        assert mallory_client.get(target).status_code == 404
        assert mallory_client.post(target).status_code == 404
    assert Suppression.objects.filter(pk=entry.pk).exists()
