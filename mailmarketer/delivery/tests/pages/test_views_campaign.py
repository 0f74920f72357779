"""The sending side of the campaign pages: the list with sent of total, the campaign page with a
button per allowed move (status.MOVES), and every status change through the UI with its audit
row."""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta

import pytest
from django.utils.timezone import now

from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import SETUP, events, launched, ledger_rows, url

pytestmark = pytest.mark.django_db
Status = Campaign.Status


def html_of(response) -> str:
    return response.content.decode()


# -- the list --------------------------------------------------------------------------------


def test_it_lists_campaigns_with_status_lists_and_sent_of_total(alice_client, draft, people):
    running = launched(actions.do_clone_campaign(draft, actor=SETUP, name="Running one"))
    ledger_rows(running, people, ["sent", "sent", "queued"])
    response = alice_client.get(url("campaigns-home"))
    assert response.status_code == 200
    html = html_of(response)
    assert "Autumn news" in html and "Running one" in html
    assert "2 / 3" in html
    assert '<span class="tag">News</span>' in html
    assert 'href="/app/acme/campaigns/new/"' in html
    assert f'href="/app/acme/campaigns/{running.pk}/"' in html


def test_it_filters_the_list_by_status(alice_client, draft):
    launched(actions.do_clone_campaign(draft, actor=SETUP, name="Sending now"))
    html = html_of(alice_client.get(url("campaigns-home") + "?status=running"))
    assert "Sending now" in html and "Autumn news" not in html
    bad = alice_client.get(url("campaigns-home") + "?status=exploded")
    assert bad.status_code == 400
    assert "Select a valid choice" in html_of(bad)


def test_it_is_the_campaigns_section_of_the_navigation(carol_client, personas):
    html = html_of(carol_client.get(url("app-dashboard")))
    assert 'href="/app/acme/campaigns/"' in html


def test_it_shows_an_analyst_the_list_without_new_campaign(carol_client, draft):
    response = carol_client.get(url("campaigns-home"))
    assert response.status_code == 200
    assert "Autumn news" in html_of(response)
    assert "/campaigns/new/" not in html_of(response)


def test_it_shows_mallory_none_of_acmes_campaigns(mallory_client, draft, evil_draft):
    assert mallory_client.get(url("campaigns-home")).status_code == 404
    own = html_of(mallory_client.get(url("campaigns-home", ws="evil")))
    assert "Evil plan" in own and "Autumn news" not in own


# -- the campaign page -----------------------------------------------------------------------


def buttons(html: str) -> set[str]:
    names = set(re.findall(r'action="/app/acme/campaigns/\d+/(\w+)/"', html))
    for link in ("cancel", "start"):  # pages of their own: a form, a confirmation
        if re.search(rf'href="/app/acme/campaigns/\d+/{link}/"', html):
            names.add(link)
    return names


def test_it_shows_a_draft_with_start_schedule_and_cancel(bob_client, draft):
    html = html_of(bob_client.get(url("campaign", campaign_id=draft.pk)))
    assert buttons(html) == {"start", "schedule", "cancel", "clone"}
    assert 'type="datetime-local"' in html
    assert "In the workspace&#x27;s time zone, Europe/Berlin." in html
    assert "subscribers who join after it are not included" in html


def test_it_shows_an_analyst_the_campaign_without_buttons(carol_client, draft):
    response = carol_client.get(url("campaign", campaign_id=draft.pk))
    assert response.status_code == 200
    assert buttons(html_of(response)) == set()


def test_it_shows_a_running_campaign_with_pause_cancel_and_live_progress(bob_client, draft, people):
    launched(draft)
    ledger_rows(draft, people, ["sent", "failed", "queued"])
    html = html_of(bob_client.get(url("campaign", campaign_id=draft.pk)))
    assert buttons(html) == {"pause", "retry", "cancel", "clone"}
    assert f'hx-get="/app/acme/campaigns/{draft.pk}/progress/"' in html
    assert 'hx-trigger="every 2s"' in html
    assert "subscribers who joined after it are not included" in html


def test_it_shows_a_paused_campaign_with_its_reason_and_resume(bob_client, draft, people):
    launched(
        draft,
        status=Status.PAUSED,
        status_reason="the relay refused us: 535 5.7.8 authentication failed",
    )
    html = html_of(bob_client.get(url("campaign", campaign_id=draft.pk)))
    assert 'Paused</span>: <span class="status-reason">the relay refused us: 535 5.7.8' in html
    assert buttons(html) == {"resume", "cancel", "clone"}
    assert "hx-trigger" not in html  # nothing to poll while paused


def test_it_escapes_a_status_reason_from_a_relay(bob_client, draft):
    launched(draft, status=Status.PAUSED, status_reason="the relay refused us: <img src=x>")
    html = html_of(bob_client.get(url("campaign", campaign_id=draft.pk)))
    assert "&lt;img src=x&gt;" in html and "<img src=x>" not in html


def test_it_shows_mallory_no_acme_campaign_even_through_her_own_workspace(mallory_client, draft):
    assert mallory_client.get(url("campaign", campaign_id=draft.pk)).status_code == 404
    assert mallory_client.get(url("campaign", ws="evil", campaign_id=draft.pk)).status_code == 404


# -- transitions -----------------------------------------------------------------------------


def test_it_starts_a_campaign_with_an_audit_row(bob_client, draft, personas):
    response = bob_client.post(url("campaign-start", campaign_id=draft.pk))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.RUNNING and draft.started_at is not None
    (event,) = events("campaign.started")
    assert event.actor_user == personas.bob


def test_it_refuses_to_start_without_a_postal_address_and_links_the_settings(bob_client, draft, ws):
    ws.postal_address = ""
    ws.save()
    response = bob_client.post(url("campaign-start", campaign_id=draft.pk))
    assert response.status_code == 400
    html = html_of(response)
    assert "marketing email must show the sender&#x27;s postal address" in html
    assert 'href="/app/acme/settings/"' in html
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert not events("campaign.started")


def test_it_schedules_in_the_workspace_time_zone(bob_client, draft):
    when = (now() + timedelta(days=3)).astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    local = when.strftime("%Y-%m-%dT%H:%M")
    response = bob_client.post(url("campaign-schedule", campaign_id=draft.pk), {"when": local})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.SCHEDULED
    assert draft.scheduled_at == when.replace(second=0, microsecond=0)
    assert events("campaign.scheduled")
    html = html_of(bob_client.get(url("campaign", campaign_id=draft.pk)))
    assert f'value="{local}"' in html  # the reschedule form shows the local time
    assert buttons(html) == {"start", "schedule", "unschedule", "cancel", "clone"}


def test_it_shows_a_bad_schedule_time_on_the_field(bob_client, draft):
    response = bob_client.post(
        url("campaign-schedule", campaign_id=draft.pk), {"when": "2001-01-01T09:00"}
    )
    assert response.status_code == 400
    html = html_of(response)
    assert re.search(r'name="when"[^>]*aria-invalid="true"', html)
    assert "in the past" in html
    response = bob_client.post(url("campaign-schedule", campaign_id=draft.pk), {"when": "soon"})
    assert response.status_code == 400
    assert "is not a date and time" in html_of(response)
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT


def test_it_unschedules_back_to_a_draft(bob_client, draft):
    campaign_actions.do_schedule_campaign(draft, now() + timedelta(days=1), actor=SETUP)
    response = bob_client.post(url("campaign-unschedule", campaign_id=draft.pk))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT and draft.scheduled_at is None
    assert events("campaign.status_changed", new__status="draft")


def test_it_pauses_and_resumes(bob_client, draft):
    launched(draft)
    assert bob_client.post(url("campaign-pause", campaign_id=draft.pk)).status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.PAUSED and draft.status_reason == "paused by staff"
    assert bob_client.post(url("campaign-resume", campaign_id=draft.pk)).status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.RUNNING
    assert len(events("campaign.paused")) == 1 and len(events("campaign.resumed")) == 1


def test_it_refuses_a_transition_the_status_does_not_allow(bob_client, draft):
    response = bob_client.post(url("campaign-pause", campaign_id=draft.pk))
    assert response.status_code == 409
    assert "cannot go from draft to paused" in html_of(response)
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT


def test_it_cancels_after_confirming_with_a_reason(bob_client, draft, people):
    launched(draft)
    ledger_rows(draft, people, ["sent", "queued", "queued"])
    page = bob_client.get(url("campaign-cancel", campaign_id=draft.pk))
    assert page.status_code == 200
    assert "1 of 3 messages have been sent" in html_of(page)
    draft.refresh_from_db()
    assert draft.status == Status.RUNNING  # the page itself changes nothing
    response = bob_client.post(
        url("campaign-cancel", campaign_id=draft.pk), {"reason": "wrong price"}
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.status, draft.status_reason) == (Status.CANCELLED, "wrong price")
    (event,) = events("campaign.cancelled")
    assert event.new["reason"] == "wrong price"


def test_it_refuses_to_cancel_a_finished_campaign(bob_client, draft):
    launched(draft, status=Status.FINISHED, finished_at=now())
    assert bob_client.get(url("campaign-cancel", campaign_id=draft.pk)).status_code == 409
    assert bob_client.post(url("campaign-cancel", campaign_id=draft.pk)).status_code == 409


def test_it_retries_failed_rows_and_runs_a_finished_campaign_again(bob_client, draft, people):
    launched(draft, status=Status.FINISHED, finished_at=now(), planning_done=True)
    rows = ledger_rows(draft, people, ["sent", "failed", "failed"], smtp_reply="550 no")
    html = html_of(bob_client.get(url("campaign", campaign_id=draft.pk)))
    assert "Retry 2 failed" in html
    response = bob_client.post(url("campaign-retry", campaign_id=draft.pk))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.RUNNING and draft.finished_at is None
    statuses = {r.pk: Delivery.objects.get(pk=r.pk) for r in rows}
    assert [statuses[r.pk].status for r in rows] == ["sent", "queued", "queued"]
    assert all(statuses[r.pk].attempts == 0 for r in rows[1:])
    assert all(statuses[r.pk].next_attempt_at <= now() for r in rows[1:])
    (event,) = events("campaign.retried")
    assert event.old == {"status": "finished"}
    assert event.new == {"status": "running", "requeued": 2}


def test_it_says_when_there_is_nothing_to_retry(bob_client, draft, people):
    launched(draft)
    ledger_rows(draft, people, ["sent", "sent", "queued"])
    response = bob_client.post(url("campaign-retry", campaign_id=draft.pk))
    assert response.status_code == 400
    assert "no failed messages to retry" in html_of(response)
    assert not events("campaign.retried")
