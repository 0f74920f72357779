"""/subscribers: find people, add, read, change, delete and erase them, and export their data.

Personal data (email, name, attributes, the consent ledger with its IPs) is shown only to a
token whose role has `audience.view_personal_data`; others get the masked presentation of
audience.queries.present_subscriber, and may not filter on it either (`q`, `attr.*` are a 403):
a filter on real values behind masked answers confirms an address one character at a time.
Every unmasked answer writes one audit row: a page of search results one `subscriber.listed`
row with the count, one person `subscriber.viewed`, an export `subscriber.exported`.
Subscribers are addressed by their uuid only.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.core import signing
from django.db import transaction
from django.http import Http404
from ninja import Query, Router, Status

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import queries
from mailmarketer.audience.actions import (
    Blocklisted,
    Reason,
    Suppressed,
    do_blocklist_subscriber,
    do_create_subscriber,
    do_delete_subscriber,
    do_erase_subscriber,
    do_export_personal_data,
    do_subscribe,
    do_unblock_subscriber,
    do_update_subscriber,
    notice_for_text,
    record_subscriber_viewed,
    record_subscribers_listed,
)
from mailmarketer.audience.models import MailingList, Subscriber
from mailmarketer.audience.queries import TEXT_OPS, AttributeText, SubscriberFilter

from .access import require
from .audience_schemas import (
    ATTRIBUTE_NAME_MAX,
    SubscriberDetail,
    SubscriberIn,
    SubscriberPage,
    SubscriberPatch,
    SubscriberQuery,
)
from .errors import READ_ERRORS, WRITE_ERRORS, ApiError, FieldErrors

router = Router(tags=["subscribers"])


ATTRIBUTE_PREFIX = "attr."
CURSOR_SALT = "mailmarketer.api.subscribers.cursor"


# -- helpers shared with lists.py ------------------------------------------------------------


def reveals(request) -> bool:
    return p.VIEW_PERSONAL_DATA in request.api_token.permissions


@contextmanager
def refusals():
    """Maps the audience actions' refusals onto the API's answers: a suppressed or blocklisted
    person is a 409 with its own code, an invalid address a 422 on `email`."""
    try:
        yield
    except Suppressed as exc:
        raise ApiError(409, str(exc), code="suppressed") from exc
    except Blocklisted as exc:
        raise ApiError(409, str(exc), code="blocklisted") from exc
    except ActionError as exc:
        if exc.code == "invalid_email":
            raise FieldErrors([{"field": "email", "message": str(exc)}]) from exc
        raise


def confirms(confirmed: bool | None, mailing_list: MailingList) -> bool:
    """Whether a new membership is confirmed: as asked, or by default as the list's opt-in."""
    if confirmed is None:
        return mailing_list.optin == MailingList.OptIn.SINGLE
    return confirmed


def notice_required(confirmed: bool | None, lists: list[MailingList]) -> list[str]:
    """Slugs of the lists on which this call would make a confirmed membership: those need the
    wording the person agreed to, for the consent ledger."""
    return [m.slug for m in lists if confirms(confirmed, m)]


def confirmed_from(status: str | None) -> bool | None:
    return {"confirmed": True, "unconfirmed": False}.get(status) if status else None


# -- presentation ----------------------------------------------------------------------------


def subscription_out(subscription) -> dict:
    mailing_list = subscription.mailing_list
    return {
        "list": {"id": mailing_list.pk, "slug": mailing_list.slug, "name": mailing_list.name},
        "status": subscription.status,
        "status_reason": subscription.status_reason,
        "created_at": subscription.created_at,
        "confirmed_at": subscription.confirmed_at,
        "unsubscribed_at": subscription.unsubscribed_at,
    }


def consent_out(record) -> dict:
    notice = record.notice
    return {
        "at": record.at,
        "purpose": record.purpose,
        "action": record.action,
        "notice": None
        if notice is None
        else {
            "name": notice.name,
            "version": notice.version,
            "text": notice.text,
            "sha256": notice.sha256,
        },
        "source_type": record.source_type,
        "source_label": record.source_label,
        "ip": record.ip,
        "user_agent": record.user_agent,
        "confirmed_at": record.confirmed_at,
    }


def subscriber_detail(subscriber: Subscriber, *, reveal: bool) -> dict:
    out = queries.present_subscriber(subscriber, reveal=reveal)
    out["subscriptions"] = [subscription_out(s) for s in queries.subscriptions_of(subscriber)]
    out["consent"] = (
        [consent_out(r) for r in queries.consent_history(subscriber)] if reveal else None
    )
    return out


def subscriber_or_404(request, subscriber_id: str) -> Subscriber:
    try:
        key = uuid.UUID(subscriber_id)
    except ValueError:
        key = None
    subscriber = queries.get_subscriber(request.workspace, key) if key else None
    if subscriber is None:
        raise Http404("no such subscriber in this workspace")
    return subscriber


# -- the search's query string ---------------------------------------------------------------


def encode_cursor(before_id: int | None) -> str | None:
    if before_id is None:
        return None
    return signing.Signer(salt=CURSOR_SALT).sign_object({"before": before_id})


def decode_cursor(raw: str) -> int | None:
    """The id a cursor of ours stands for; None for anything else."""
    try:
        before = signing.Signer(salt=CURSOR_SALT).unsign_object(raw)["before"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return before if isinstance(before, int) else None


def attribute_rules(params) -> tuple[list[AttributeText], list[dict]]:
    """`attr.<name>=v` (equals), `attr.<name>__<op>=v` with op one of TEXT_OPS."""
    rules, errors = [], []
    for key in params:
        if not key.startswith(ATTRIBUTE_PREFIX):
            continue
        name, sep, op = key[len(ATTRIBUTE_PREFIX) :].rpartition("__")
        if not sep:
            name, op = op, "eq"
        if op not in TEXT_OPS:
            errors.append(
                {
                    "field": key,
                    "message": f"unknown comparison {op!r}: use one of {', '.join(TEXT_OPS)}, "
                    f"as in attr.age__gte=30 (for a name with '__' in it, end with __eq)",
                }
            )
            continue
        if not name.strip() or len(name) > ATTRIBUTE_NAME_MAX or name.isdigit():
            errors.append(
                {
                    "field": key,
                    "message": f"give an attribute name of 1-{ATTRIBUTE_NAME_MAX} characters, "
                    "not only digits, after 'attr.'",
                }
            )
            continue
        rules.extend(AttributeText(name, op, value) for value in params.getlist(key))
    return rules, errors


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def personal_filters(request) -> list[str]:
    """The query parameters that filter on personal data: `q` (address or name) and every
    `attr.*` (any attribute's value may be personal)."""
    return [
        key
        for key in request.GET
        if (key == "q" and request.GET[key].strip()) or key.startswith(ATTRIBUTE_PREFIX)
    ]


def search_filter(request, filters: SubscriberQuery):
    """(filter, the cursor's id or None, attribute rules, field errors) from the query
    string."""
    known = set(SubscriberQuery.model_fields)
    errors = [
        {
            "field": key,
            "message": "unknown query parameter: the filters are "
            f"{', '.join(sorted(known))} and attr.<name>[__<comparison>]",
        }
        for key in request.GET
        if key not in known and not key.startswith(ATTRIBUTE_PREFIX)
    ]
    rules, rule_errors = attribute_rules(request.GET)
    errors += rule_errors
    list_id = None
    if filters.list:
        mailing_list = queries.get_list(request.workspace, filters.list)
        if mailing_list is None:
            errors.append({"field": "list", "message": f"no list {filters.list!r} here"})
        else:
            list_id = mailing_list.pk
    if filters.subscription_status and not filters.list:
        errors.append(
            {"field": "subscription_status", "message": "give `list` too: status on which list?"}
        )
    before_id = decode_cursor(filters.cursor) if filters.cursor else None
    if filters.cursor and before_id is None:
        errors.append(
            {
                "field": "cursor",
                "message": "not a cursor this API gave out: pass `next_cursor` of the previous "
                "page as it is, or leave it out for the first page",
            }
        )
    search = SubscriberFilter(
        q=filters.q.strip(),
        list_id=list_id,
        subscription_status=filters.subscription_status,
        status=filters.status,
        created_from=_utc(filters.created_after),
        created_to=_utc(filters.created_before),
    )
    return search, before_id, rules, errors


# -- routes ----------------------------------------------------------------------------------


@router.get(
    "/subscribers",
    response={200: SubscriberPage, **READ_ERRORS},
    summary="Find subscribers",
)
@require(p.AUDIENCE_VIEW)
def list_subscribers(request, filters: Query[SubscriberQuery]):
    """Newest first, `limit` per page (1-500, default 50); pass `next_cursor` back as `cursor`
    for the next page. Filters combine with AND; attribute filters are written
    `attr.city=Oslo` (equals, as text or the number or boolean it spells),
    `attr.city__contains=os`, `attr.age__gte=30` (gt, gte, lt, lte: numbers when the value is
    a number, text otherwise). `q` and `attr.*` filter on personal data, so they need
    `audience.view_personal_data` too (403 otherwise); the other filters do not."""
    personal = personal_filters(request)
    if personal and not reveals(request):
        raise ApiError(
            403,
            f"filtering on personal data ({', '.join(personal)}) needs the permission "
            f"{p.VIEW_PERSONAL_DATA!r}, which this token's role ({request.api_token.role}) "
            "does not have; list, subscription_status, status and the dates need no more",
            code="personal_data_filter",
        )
    search, before_id, rules, errors = search_filter(request, filters)
    if errors:
        raise FieldErrors(errors)
    page, next_id = queries.search_subscribers_by_text(
        request.workspace, search, rules, before_id=before_id, limit=filters.limit
    )
    reveal = reveals(request)
    if reveal:
        record_subscribers_listed(
            request.workspace, count=len(page), actor=Actor.from_request(request)
        )
    return {
        "subscribers": [queries.present_subscriber(s, reveal=reveal) for s in page],
        "next_cursor": encode_cursor(next_id),
    }


@router.post(
    "/subscribers",
    response={201: SubscriberDetail, **WRITE_ERRORS},
    summary="Add a subscriber",
)
@require(p.AUDIENCE_MANAGE)
def create_subscriber(request, payload: SubscriberIn):
    """Creates the subscriber and subscribes them to `lists`, in one transaction. A confirmed
    subscription (status `confirmed`, or the default on a single opt-in list) needs
    `consent.notice_text`: the words the person agreed to. A suppressed address (unsubscribed
    from everything, bounced, complained, erased) is refused with 409 `suppressed`; an address
    already here with 409 `conflict`."""
    workspace = request.workspace
    errors, lists = [], []
    for i, key in enumerate(payload.lists):
        mailing_list = queries.get_list(workspace, key)
        if mailing_list is None:
            errors.append({"field": f"lists.{i}", "message": f"no list {key!r} here"})
        else:
            lists.append(mailing_list)
    confirmed = confirmed_from(payload.status)
    if not payload.lists and payload.status:
        errors.append({"field": "status", "message": "status is for subscriptions: give lists"})
    if not payload.lists and payload.consent:
        errors.append({"field": "consent", "message": "consent is for subscriptions: give lists"})
    needs_notice = notice_required(confirmed, lists)
    if needs_notice and payload.consent is None:
        errors.append(
            {
                "field": "consent.notice_text",
                "message": "notice_text is required for confirmed subscriptions (here: "
                f"{', '.join(needs_notice)}): the consent wording the person agreed to",
            }
        )
    if errors:
        raise FieldErrors(errors)
    actor = Actor.from_request(request)
    with refusals(), transaction.atomic():
        notice = (
            notice_for_text(workspace, payload.consent.notice_name, payload.consent.notice_text)
            if payload.consent
            else None
        )
        subscriber = do_create_subscriber(
            workspace,
            email=payload.email,
            name=payload.name,
            first_name=payload.first_name,
            last_name=payload.last_name,
            attributes=payload.attributes,
            source=Subscriber.Source.API,
            actor=actor,
        )
        if lists:
            do_subscribe(
                subscriber,
                lists,
                actor=actor,
                reason=Reason.BY_API,
                notice=notice,
                confirmed=confirmed,
            )
    return Status(201, subscriber_detail(subscriber, reveal=reveals(request)))


@router.get(
    "/subscribers/{subscriber_id}",
    response={200: SubscriberDetail, **READ_ERRORS},
    summary="One subscriber, with subscriptions and consent",
)
@require(p.AUDIENCE_VIEW)
def get_subscriber(request, subscriber_id: str):
    """The consent ledger (newest first) only with `audience.view_personal_data`."""
    subscriber = subscriber_or_404(request, subscriber_id)
    reveal = reveals(request)
    if reveal:
        record_subscriber_viewed(subscriber, actor=Actor.from_request(request))
    return subscriber_detail(subscriber, reveal=reveal)


@router.patch(
    "/subscribers/{subscriber_id}",
    response={200: SubscriberDetail, **WRITE_ERRORS},
    summary="Change a subscriber",
)
@require(p.AUDIENCE_MANAGE)
def patch_subscriber(request, subscriber_id: str, payload: SubscriberPatch):
    """Send only what changes. `attributes` are merged into the existing ones unless
    `attributes_mode` is `replace`. `status: blocklisted` unsubscribes from every list."""
    subscriber = subscriber_or_404(request, subscriber_id)
    changes = payload.model_dump(exclude_unset=True)
    if "attributes_mode" in changes and "attributes" not in changes:
        raise FieldErrors(
            [{"field": "attributes_mode", "message": "give the attributes to merge or replace"}]
        )
    actor = Actor.from_request(request)
    with refusals(), transaction.atomic():
        if {"email", "name", "first_name", "last_name", "attributes"} & set(changes):
            do_update_subscriber(
                subscriber,
                email=changes.get("email"),
                name=changes.get("name"),
                first_name=changes.get("first_name"),
                last_name=changes.get("last_name"),
                attributes=changes.get("attributes"),
                merge_attributes=changes.get("attributes_mode") != "replace",
                actor=actor,
            )
        if changes.get("status") == Subscriber.Status.BLOCKLISTED:
            do_blocklist_subscriber(subscriber, actor=actor)
        elif changes.get("status") == Subscriber.Status.ENABLED:
            do_unblock_subscriber(subscriber, actor=actor)
    reveal = reveals(request)
    if reveal:
        record_subscriber_viewed(subscriber, actor=actor)
    return subscriber_detail(subscriber, reveal=reveal)


@router.delete(
    "/subscribers/{subscriber_id}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a subscriber",
)
@require(p.AUDIENCE_MANAGE)
def delete_subscriber(request, subscriber_id: str):
    """Removes the record; the address is not suppressed, so the person may be added again.
    To honour an erasure request use `POST .../erase`."""
    subscriber = subscriber_or_404(request, subscriber_id)
    do_delete_subscriber(subscriber, actor=Actor.from_request(request))
    return Status(204, None)


@router.post(
    "/subscribers/{subscriber_id}/erase",
    response={204: None, **WRITE_ERRORS},
    summary="Erase a subscriber (right to erasure)",
)
@require(p.AUDIENCE_MANAGE)
def erase_subscriber(request, subscriber_id: str):
    """Deletes every row naming the person and keeps only a hash of the address on the
    suppression list: adding the address again, by any path, is refused."""
    subscriber = subscriber_or_404(request, subscriber_id)
    do_erase_subscriber(subscriber, actor=Actor.from_request(request))
    return Status(204, None)


@router.get(
    "/subscribers/{subscriber_id}/export",
    response={200: dict[str, Any], **READ_ERRORS},
    summary="Everything held about a subscriber (access request)",
)
@require(p.AUDIENCE_EXPORT)
def export_subscriber(request, subscriber_id: str):
    """One JSON document with every row naming the person: profile, subscriptions, consent
    records. Needs `audience.view_personal_data` as well; audited."""
    if not reveals(request):
        raise ApiError(
            403,
            f"this token's role ({request.api_token.role}) does not have the permission "
            f"{p.VIEW_PERSONAL_DATA!r} that exporting a person's data also needs",
        )
    subscriber = subscriber_or_404(request, subscriber_id)
    return do_export_personal_data(subscriber, actor=Actor.from_request(request))
