"""/lists: mailing lists with their member counts, and adding many people to one at once.

A list is addressed by its numeric id or its slug. Reading needs `audience.view`, every change
`audience.manage`.
"""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from ninja import Router, Status

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import queries
from mailmarketer.audience.actions import (
    BULK_ADD_LIMIT,
    BULK_ADD_RESULTS,
    do_bulk_add_to_list,
    do_create_list,
    do_delete_list,
    do_update_list,
    notice_for_text,
)

from .access import require
from .audience_schemas import BulkAddIn, BulkAddOut, ListIn, ListOut, ListPatch, ListsOut
from .errors import READ_ERRORS, WRITE_ERRORS, FieldErrors
from .subscribers import confirmed_from, confirms, notice_required

router = Router(tags=["lists"])


def list_out(mailing_list) -> dict:
    """A list annotated with its counts (queries.lists_with_counts, get_list_with_counts)."""
    return {
        "id": mailing_list.pk,
        "name": mailing_list.name,
        "slug": mailing_list.slug,
        "description": mailing_list.description,
        "visibility": mailing_list.visibility,
        "optin": mailing_list.optin,
        "tags": mailing_list.tags,
        "created_at": mailing_list.created_at,
        "counts": {
            "confirmed": mailing_list.confirmed,
            "unconfirmed": mailing_list.unconfirmed,
            "unsubscribed": mailing_list.unsubscribed,
        },
    }


def list_or_404(request, list_id: str, *, counts: bool = False):
    find = queries.get_list_with_counts if counts else queries.get_list
    mailing_list = find(request.workspace, list_id)
    if mailing_list is None:
        raise Http404("no such list in this workspace")
    return mailing_list


@router.get("/lists", response={200: ListsOut, **READ_ERRORS}, summary="All lists")
@require(p.AUDIENCE_VIEW)
def all_lists(request):
    """By name, each with its members counted by subscription status."""
    return {"lists": [list_out(m) for m in queries.lists_with_counts(request.workspace)]}


@router.post("/lists", response={201: ListOut, **WRITE_ERRORS}, summary="Create a list")
@require(p.AUDIENCE_MANAGE)
def create_list(request, payload: ListIn):
    """A slug already used in this workspace is refused with 409."""
    mailing_list = do_create_list(
        request.workspace, actor=Actor.from_request(request), **payload.model_dump()
    )
    return Status(201, list_out(queries.get_list_with_counts(request.workspace, mailing_list.pk)))


@router.get("/lists/{list_id}", response={200: ListOut, **READ_ERRORS}, summary="One list")
@require(p.AUDIENCE_VIEW)
def get_list(request, list_id: str):
    return list_out(list_or_404(request, list_id, counts=True))


@router.patch("/lists/{list_id}", response={200: ListOut, **WRITE_ERRORS}, summary="Change a list")
@require(p.AUDIENCE_MANAGE)
def patch_list(request, list_id: str, payload: ListPatch):
    """Send only what changes; a slug already used by another list is refused with 409."""
    mailing_list = list_or_404(request, list_id)
    do_update_list(
        mailing_list, payload.model_dump(exclude_unset=True), actor=Actor.from_request(request)
    )
    return list_out(queries.get_list_with_counts(request.workspace, mailing_list.pk))


@router.delete("/lists/{list_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a list")
@require(p.AUDIENCE_MANAGE)
def delete_list(request, list_id: str):
    """The memberships go with it; the subscribers and their consent records stay."""
    do_delete_list(list_or_404(request, list_id), actor=Actor.from_request(request))
    return Status(204, None)


@router.post(
    "/lists/{list_id}/subscriptions",
    response={200: BulkAddOut, **WRITE_ERRORS},
    summary="Add up to 10,000 people to a list",
)
@require(p.AUDIENCE_MANAGE)
def bulk_add(request, list_id: str, payload: BulkAddIn):
    """Creates the subscribers who are new and puts everyone on the list, answering one result
    per item in order: `created`, `subscribed`, `already`, `unsubscribed_kept` (they left the
    list earlier; only they or staff renew it), `suppressed`, `blocklisted` or `invalid` (with
    the reason). A bad item never fails the others. Existing subscribers' names and attributes
    are left as they are. Confirmed memberships (status `confirmed`, or the default on a single
    opt-in list) need `notice_text`."""
    mailing_list = list_or_404(request, list_id)
    errors = []
    if len(payload.subscribers) > BULK_ADD_LIMIT:
        errors.append(
            {
                "field": "subscribers",
                "message": f"at most {BULK_ADD_LIMIT:,} subscribers per call, this one has "
                f"{len(payload.subscribers):,}: split it into several calls",
            }
        )
    confirmed = confirmed_from(payload.status)
    if notice_required(confirmed, [mailing_list]) and payload.notice_text is None:
        errors.append(
            {
                "field": "notice_text",
                "message": "notice_text is required for confirmed memberships (status "
                "'confirmed', or a single opt-in list): the consent wording the people agreed to",
            }
        )
    if errors:
        raise FieldErrors(errors)
    with transaction.atomic():
        notice = (
            notice_for_text(request.workspace, payload.notice_name, payload.notice_text)
            if payload.notice_text
            else None
        )
        results = do_bulk_add_to_list(
            mailing_list,
            payload.subscribers,
            confirmed=confirmed,
            notice=notice,
            actor=Actor.from_request(request),
        )
    counts = dict.fromkeys(BULK_ADD_RESULTS, 0)
    for result in results:
        counts[result.result] += 1
    return {
        "list": {"id": mailing_list.pk, "slug": mailing_list.slug, "name": mailing_list.name},
        "status": "confirmed" if confirms(confirmed, mailing_list) else "unconfirmed",
        "counts": counts,
        "results": [
            {
                "index": index,
                "result": r.result,
                "id": r.subscriber_uuid,
                "status": r.status or None,
                "reason": r.reason or None,
            }
            for index, r in enumerate(results)
        ],
    }
