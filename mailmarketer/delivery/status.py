"""A campaign's status: the one table of the moves it may make, and the one function that writes
it.

Every change of `Campaign.status` goes through `set_campaign_status`: the staff actions
(delivery/campaign_actions.py, shared by the pages and the API), the scheduler
(delivery/scheduler.py) and the engine's own pause and finish (delivery/engine.py), each with
its actor and its audit row. Creating a campaign (a draft, or a transactional message created
running with its one ledger row) sets a first status; nothing else writes it.

The write is one conditional UPDATE (the status still being the one the caller read), so two
workers, or a worker and a member of staff, cannot both move the same campaign: the second finds
the row changed and is told so (False). On PostgreSQL the staff actions also lock the row first
(campaigns.actions.lock_campaign); on SQLite writes are serialised (transaction_mode IMMEDIATE).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.campaigns.models import Campaign

Status = Campaign.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.DRAFT: frozenset({Status.SCHEDULED, Status.RUNNING, Status.CANCELLED}),
    Status.SCHEDULED: frozenset({Status.DRAFT, Status.RUNNING, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.PAUSED, Status.FINISHED, Status.CANCELLED, Status.FAILED}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.FAILED: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.FINISHED: frozenset(),
    Status.CANCELLED: frozenset(),
}
# The one exception to "finished is final": a staff retry of failed messages requeues them, and
# the campaign runs again to send them (campaign_actions.do_retry_failed). No other path may
# reopen it, since only requeued rows give a finished campaign something to do.
REOPENED_BY_RETRY = {Status.FINISHED: frozenset({Status.RUNNING})}

# Statuses from which staff may start (or schedule) a campaign: launching has checks to make.
LAUNCHABLE = frozenset({Status.DRAFT, Status.SCHEDULED})
# Statuses from which a campaign resumes sending, its audience snapshot kept.
RESUMABLE = frozenset({Status.PAUSED, Status.FAILED})
# Statuses in which a launched campaign may have failed messages to queue again.
RETRYABLE = frozenset({Status.RUNNING, Status.PAUSED, Status.FAILED, Status.FINISHED})

MAX_REASON = 500


@dataclass(frozen=True)
class Move:
    """One thing staff can do to a campaign's sending: a button of the campaign page and a route
    of the API (POST /campaigns/{id}/<name>), with the permission both require and the statuses
    it starts from."""

    permission: str
    starts_from: frozenset[str]


# The one table of staff moves: the campaign page shows a button for each move the campaign's
# status allows and the member's role permits (delivery/views_campaign.py), and the API's routes
# require the same permissions and list the same moves (api/campaigns.py). Each move's own
# action (campaign_actions.do_<move>_campaign) enforces it, and TRANSITIONS above it.
MOVES: dict[str, Move] = {
    "start": Move(p.CAMPAIGNS_SEND, LAUNCHABLE),
    "schedule": Move(p.CAMPAIGNS_MANAGE, LAUNCHABLE),
    "unschedule": Move(p.CAMPAIGNS_MANAGE, frozenset({Status.SCHEDULED})),
    "pause": Move(
        p.CAMPAIGNS_SEND, frozenset(s for s, to in TRANSITIONS.items() if Status.PAUSED in to)
    ),
    "resume": Move(p.CAMPAIGNS_SEND, RESUMABLE),
    "cancel": Move(
        p.CAMPAIGNS_SEND, frozenset(s for s, to in TRANSITIONS.items() if Status.CANCELLED in to)
    ),
    "retry": Move(p.CAMPAIGNS_SEND, RETRYABLE),
}


def moves_for(status: str, permissions=None) -> list[str]:
    """The moves a campaign in `status` allows (in MOVES order), only those `permissions` (a
    set of permission names; None: any) include. Retry also needs failed messages to requeue,
    which the caller knows."""
    return [
        name
        for name, move in MOVES.items()
        if status in move.starts_from and (permissions is None or move.permission in permissions)
    ]


def allowed_from(status: str) -> frozenset[str]:
    """The statuses a campaign in `status` may move to (TRANSITIONS), for pages and the API."""
    return TRANSITIONS[status]


def check_transition(from_status: str, to_status: str, *, reopen: bool = False) -> None:
    """ActionError for an unknown status; Conflict, naming from and to, for a move the table does
    not allow."""
    if to_status not in Status.values:
        raise ActionError(
            f"unknown status {to_status!r}; one of {', '.join(Status.values)}", field="status"
        )
    allowed = TRANSITIONS[from_status]
    if reopen:
        allowed = allowed | REOPENED_BY_RETRY.get(from_status, frozenset())
    if to_status not in allowed:
        shown = ", ".join(sorted(allowed)) or "none: it is final"
        raise Conflict(
            f"a campaign cannot go from {from_status} to {to_status} (from {from_status}: {shown})",
            field="status",
        )


@transaction.atomic
def set_campaign_status(
    campaign: Campaign,
    to_status: str,
    *,
    actor: Actor,
    from_status: str | None = None,
    reason: str = "",
    event: str = "campaign.status_changed",
    fields: dict | None = None,
    audit_new: dict | None = None,
    reopen: bool = False,
) -> bool:
    """Move `campaign` from the status it was read with (or `from_status`, when the caller knows
    better than its copy) to `to_status`, as TRANSITIONS allows
    (`reopen`: also finished -> running, for a retry), setting `fields` with it and writing the
    audit row `event` naming the actor. Returns False, writing nothing, when the row's status
    changed since it was read (another worker or person got there first); the caller decides
    whether that is a refusal (staff) or nothing to do (a worker duty).

    The one place a campaign's status is written. `reason` is kept as the status reason (shown
    to staff), cut to its column; callers that take a reason from a person check it first."""
    from_status = campaign.status if from_status is None else from_status
    check_transition(from_status, to_status, reopen=reopen)
    reason = (reason or "")[:MAX_REASON]
    updates = {"status": to_status, "status_reason": reason, **(fields or {})}
    changed = Campaign.objects.filter(pk=campaign.pk, status=from_status).update(**updates)
    if changed != 1:
        return False
    for key, value in updates.items():
        setattr(campaign, key, value)
    audit(
        event,
        actor=actor,
        workspace=campaign.workspace,
        obj=campaign,
        old={"status": from_status},
        new={"status": to_status, **({"reason": reason} if reason else {}), **(audit_new or {})},
    )
    return True
