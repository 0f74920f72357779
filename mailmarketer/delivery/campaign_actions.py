"""Sending a campaign, as staff (pages and API) ask for it: start now or at a time, unschedule,
pause, resume, cancel, retry the failed messages, and test sends to staff addresses. Each is one
transaction on the campaign's locked row with its audit row; status changes go through
status.set_campaign_status, the one writer, and follow status.TRANSITIONS.

Launching takes the audience snapshot (subscribers up to the highest id now) and a fresh
planning state; the planner and the engine (planner.py, engine.py) do the rest in the worker.
A campaign's content is checked again at launch (campaigns.actions.compile_checked), so a
layout changed since the campaign was saved cannot break it half-way.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Max
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.emails import InvalidEmail, normalise_email
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns import rendering
from mailmarketer.campaigns.actions import (
    MAX_TEST_ADDRESSES,
    TemplateError,
    compile_checked,
    lock_campaign,
    one_line,
    refresh_from,
    store_links,
)
from mailmarketer.campaigns.models import Campaign
from mailmarketer.campaigns.queries import preview_campaign

from .engine import send_test_message
from .models import Delivery
from .status import LAUNCHABLE, MAX_REASON, RESUMABLE, RETRYABLE, set_campaign_status

Status = Campaign.Status


# -- status --------------------------------------------------------------------------------------


def _transition(
    locked: Campaign,
    to_status: str,
    *,
    actor: Actor,
    reason: str = "",
    event: str = "campaign.status_changed",
    fields: dict | None = None,
    audit_new: dict | None = None,
    reopen: bool = False,
) -> Campaign:
    """A staff change of status, on a row locked by the caller: the reason is checked as any
    input is, then status.set_campaign_status writes it."""
    reason = one_line("reason", reason, MAX_REASON)
    changed = set_campaign_status(
        locked,
        to_status,
        actor=actor,
        reason=reason,
        event=event,
        fields=fields,
        audit_new=audit_new,
        reopen=reopen,
    )
    if not changed:
        raise Conflict("the campaign changed meanwhile; reload it and try again")
    return locked


@transaction.atomic
def do_transition_campaign(
    campaign: Campaign, to_status: str, *, actor: Actor, reason: str = ""
) -> Campaign:
    """Move a campaign to another status, as status.TRANSITIONS allows (ActionError naming
    from and to otherwise). Starting goes through do_start_campaign (it has checks to make)."""
    locked = lock_campaign(campaign)
    if to_status == Status.RUNNING and locked.status in LAUNCHABLE:
        return refresh_from(campaign, _start(locked, actor=actor))
    _transition(locked, to_status, actor=actor, reason=reason)
    return refresh_from(campaign, locked)


def _in_range(when: datetime) -> datetime:
    # 9999-12-31T23:59:59-14:00 is a valid ISO time whose UTC is in year 10000: comparing or
    # storing it raises OverflowError.
    try:
        when.astimezone(UTC)
    except OverflowError:
        raise ActionError(
            f"at: {when.isoformat()} is out of range (after 9999-12-31 in UTC)", field="at"
        ) from None
    return when


def parse_local_datetime(workspace, value: str) -> datetime:
    """ "2026-12-01T09:00" (as a form sends it) read in the workspace's time zone; a value with
    its own offset keeps it. Refuses times that do not exist or happen twice there."""
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ActionError(
            f"{value!r} is not a date and time (expected e.g. 2026-12-01T09:00)"
        ) from None
    if parsed.tzinfo is not None:
        return _in_range(parsed)
    zone = zoneinfo.ZoneInfo(workspace.timezone)
    first = _in_range(parsed.replace(tzinfo=zone, fold=0))
    second = _in_range(parsed.replace(tzinfo=zone, fold=1))
    round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != parsed:
        raise ActionError(
            f"{parsed:%Y-%m-%d %H:%M} does not exist in {workspace.timezone} (the clocks "
            "change then); choose another time",
            code="invalid_time",
        )
    if first.utcoffset() != second.utcoffset():
        raise ActionError(
            f"{parsed:%Y-%m-%d %H:%M} happens twice in {workspace.timezone} (the clocks go "
            "back then); choose another time",
            code="invalid_time",
        )
    return first


def launch_problems(campaign: Campaign) -> rendering.CheckedContent:
    """Refuse (ActionError) what cannot be sent; returns the compiled content otherwise."""
    workspace = campaign.workspace
    if campaign.kind == Campaign.Kind.MARKETING and not workspace.postal_address.strip():
        raise ActionError(
            "marketing email must show the sender's postal address: add it in the workspace "
            "settings first",
            code="postal_address_required",
        )
    if not campaign.lists.exists():
        raise ActionError("choose at least one list to send to", code="lists_required")
    if not (campaign.from_email or workspace.sender_email):
        raise ActionError(
            "give the campaign a from address, or set the workspace's sender address",
            code="from_required",
        )
    if not campaign.subject.strip():
        raise ActionError("the campaign has no subject", code="subject_required")
    return compile_checked(campaign)


def launch_fields(campaign: Campaign) -> dict:
    """What launching sets: the audience snapshot (subscribers up to the highest id now;
    people who join later are not included) and a fresh planning state."""
    top = Subscriber.objects.filter(workspace_id=campaign.workspace_id).aggregate(top=Max("id"))
    return {
        "started_at": now(),
        "finished_at": None,
        "audience_max_id": top["top"] or 0,
        "planned_up_to": 0,
        "planning_done": False,
    }


def _start(locked: Campaign, *, actor: Actor) -> Campaign:
    compiled = launch_problems(locked)
    store_links(locked, compiled.links)
    fields = launch_fields(locked)
    return _transition(
        locked,
        Status.RUNNING,
        actor=actor,
        event="campaign.started",
        fields=fields,
        audit_new={"audience_max_id": fields["audience_max_id"]},
    )


@transaction.atomic
def do_start_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Launch now (from draft or scheduled)."""
    locked = lock_campaign(campaign)
    if locked.status not in LAUNCHABLE:
        raise Conflict(f"a {locked.status} campaign cannot be started")
    return refresh_from(campaign, _start(locked, actor=actor))


@transaction.atomic
def do_schedule_campaign(campaign: Campaign, when, *, actor: Actor) -> Campaign:
    """Start at `when` (an aware datetime, or text read by parse_local_datetime). The checks
    that starting makes are made now too, so a schedule that cannot start is refused today."""
    locked = lock_campaign(campaign)
    if locked.status not in LAUNCHABLE:
        raise Conflict(f"a {locked.status} campaign cannot be scheduled")
    if isinstance(when, str):
        when = parse_local_datetime(locked.workspace, when)
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ActionError("the schedule time must be a date and time with a time zone")
    if _in_range(when) <= now():
        raise ActionError("the schedule time is in the past", code="invalid_time")
    launch_problems(locked)
    if locked.status == Status.SCHEDULED:
        old = locked.scheduled_at
        Campaign.objects.filter(pk=locked.pk).update(scheduled_at=when)
        locked.scheduled_at = when
        audit(
            "campaign.rescheduled",
            actor=actor,
            workspace=locked.workspace,
            obj=locked,
            old={"scheduled_at": old.isoformat() if old else None},
            new={"scheduled_at": when.isoformat()},
        )
        return refresh_from(campaign, locked)
    _transition(
        locked,
        Status.SCHEDULED,
        actor=actor,
        event="campaign.scheduled",
        fields={"scheduled_at": when},
        audit_new={"scheduled_at": when.isoformat()},
    )
    return refresh_from(campaign, locked)


@transaction.atomic
def do_unschedule_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    locked = lock_campaign(campaign)
    _transition(locked, Status.DRAFT, actor=actor, fields={"scheduled_at": None})
    return refresh_from(campaign, locked)


@transaction.atomic
def do_pause_campaign(campaign: Campaign, *, actor: Actor, reason: str = "") -> Campaign:
    locked = lock_campaign(campaign)
    _transition(locked, Status.PAUSED, actor=actor, reason=reason, event="campaign.paused")
    return refresh_from(campaign, locked)


@transaction.atomic
def do_resume_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Paused (or failed) -> running; the audience snapshot is kept."""
    locked = lock_campaign(campaign)
    if locked.status not in RESUMABLE:
        raise Conflict(f"a {locked.status} campaign cannot be resumed")
    _transition(locked, Status.RUNNING, actor=actor, event="campaign.resumed")
    return refresh_from(campaign, locked)


@transaction.atomic
def do_cancel_campaign(campaign: Campaign, *, actor: Actor, reason: str = "") -> Campaign:
    locked = lock_campaign(campaign)
    _transition(
        locked,
        Status.CANCELLED,
        actor=actor,
        reason=reason,
        event="campaign.cancelled",
        fields={"finished_at": now()},
    )
    return refresh_from(campaign, locked)


# -- test sends ----------------------------------------------------------------------------------


def _test_addresses(addresses: Iterable[str]) -> list[str]:
    if isinstance(addresses, str):
        addresses = re.split(r"[,\s;]+", addresses)
    clean = []
    for address in addresses:
        if not isinstance(address, str) or not address.strip():
            continue
        try:
            clean.append(normalise_email(address))
        except InvalidEmail as exc:
            raise ActionError(f"{address!r}: {exc}", code="invalid_email", field="to") from None
    clean = list(dict.fromkeys(clean))
    if not clean:
        raise ActionError(
            "give at least one address to send the test to", code="required", field="to"
        )
    if len(clean) > MAX_TEST_ADDRESSES:
        raise ActionError(f"a test goes to at most {MAX_TEST_ADDRESSES} addresses", field="to")
    return clean


@transaction.atomic
def do_send_test(
    campaign: Campaign,
    addresses: list[str],
    *,
    actor: Actor,
    subscriber: Subscriber | None = None,
) -> rendering.RenderedMessage:
    """Render the campaign (with sample data, or as `subscriber`) and send it to staff
    addresses (not subscribers, not in the ledger) through the delivery engine, after commit."""
    to = _test_addresses(addresses)
    try:
        rendered = preview_campaign(campaign, subscriber)
    except rendering.TemplateProblem as problem:
        raise TemplateError(problem) from None
    except rendering.RenderError as exc:
        raise ActionError(str(exc), code="template") from None
    audit(
        "campaign.test_sent",
        actor=actor,
        workspace=campaign.workspace,
        obj=campaign,
        new={"recipients": len(to)}
        | ({"as_subscriber": str(subscriber.uuid)} if subscriber else {}),
    )

    def send():
        # The engine builds and sends the message (MIME, DKIM, the relay or outbox).
        for address in to:
            send_test_message(campaign, rendered, address)

    transaction.on_commit(send)
    return rendered


# -- retrying failed messages ----------------------------------------------------------------------


@transaction.atomic
def do_retry_failed(campaign: Campaign, *, actor: Actor) -> int:
    """Queue the campaign's failed ledger rows again (attempts from zero, due now); returns how
    many. A finished campaign runs again to send them; a paused or failed one sends them once
    resumed. Only launched campaigns that were not cancelled have rows to retry.

    A finished campaign reopens here and nowhere else (status.REOPENED_BY_RETRY): only requeued
    rows give it something to do."""
    locked = lock_campaign(campaign)
    if locked.status not in RETRYABLE:
        raise Conflict(
            f"a {locked.status} campaign has no messages to retry (only running, paused, failed "
            "and finished campaigns do)"
        )
    count = Delivery.objects.filter(
        workspace_id=locked.workspace_id,
        campaign_id=locked.pk,
        status__in=(Delivery.Status.FAILED, Delivery.Status.DEAD),
    ).update(
        status=Delivery.Status.QUEUED,
        attempts=0,
        lease_expiries=0,
        next_attempt_at=now(),
        lease_owner="",
        lease_expires_at=None,
        # The retry window (MM_DELIVERY_RETRY_DEADLINE_S) counts from the ledger row's
        # created_at: a staff retry starts a new series of attempts, so it starts a new window.
        created_at=now(),
    )
    if not count:
        raise ActionError("this campaign has no failed messages to retry", code="nothing_to_retry")
    old_status = locked.status
    if locked.status == Status.FINISHED:
        _transition(
            locked,
            Status.RUNNING,
            actor=actor,
            event="campaign.reopened",
            fields={"finished_at": None},
            reopen=True,
        )
    audit(
        "campaign.retried",
        actor=actor,
        workspace=locked.workspace,
        obj=locked,
        old={"status": old_status},
        new={"status": locked.status, "requeued": count},
    )
    refresh_from(campaign, locked)
    return count
