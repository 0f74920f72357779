"""Audience pages: finding subscribers (search, filters, keyset pages, bulk actions, adding one
by hand) and one subscriber's page (profile, attributes, subscriptions, consent history,
blocklist, delete, erase, personal-data export).

Masking: without audience.view_personal_data a page shows masked addresses and no names,
attribute values or IP addresses (queries.present_subscriber), and searching by address or
name, or on an attribute's value, is off (a search box would reveal an address one character
at a time): such a filter in the URL gets a 403 page saying which, never a quiet result. Every page
shown unmasked writes one audit row: "subscriber.viewed" for a person's page,
"subscriber.listed" (with the count only) for a list of people. Confirmation pages show the
masked address, so they need no audit row.

Subscribers are named in URLs by uuid, looked up inside request.workspace only.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from . import actions, queries
from .actions import BULK_ACTIONS, Reason
from .emails import mask_email
from .forms import (
    ATTRIBUTE_RULE_HELP,
    AddSubscriberForm,
    BulkForm,
    ProfileForm,
    SubscriberFilterForm,
    attribute_formset,
)
from .models import ConsentRecord, Segment, Subscriber, display_name
from .views_lists import audience_subnav, forbidden, sees_personal_data
from .views_lists import status_for as _status_for

PAGE_SIZE = 50


class BadCursor(ValueError):
    pass


def _cursor(request) -> int | None:
    raw = request.GET.get("before", "")
    if raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise BadCursor("the page link is broken: “before” must be a whole number")
    return int(raw)


def _filter_form(request, lists):
    return SubscriberFilterForm(
        request.GET,
        lists=lists,
        tz=request.workspace.timezone,
        can_search=sees_personal_data(request),
        segments=Segment.objects.filter(workspace=request.workspace).order_by("name"),
    )


# -- the subscribers page --------------------------------------------------------------------


def _subscribers_page(
    request, *, add_form=None, bulk_form=None, error: str = "", status: int = 200
):
    workspace = request.workspace
    reveal = sees_personal_data(request)
    can_manage = request.membership.has(p.AUDIENCE_MANAGE)
    lists = queries.lists_of(workspace)
    form = _filter_form(request, lists)
    page, cursor, rows = [], None, []
    refused = form.refused_filters()
    if refused:
        error = (
            f"Filtering on personal data ({', '.join(refused)}) needs permission to see "
            "personal data, which your role does not have. Remove that filter to see subscribers."
        )
        status = 403
    elif not form.is_valid():
        error = error or "Fix the filters below to see subscribers."
        status = 400 if status == 200 else status
    else:
        try:
            found, rules = form.to_filter()
            page, cursor = queries.search_subscribers_by_text(
                workspace, found, rules, before_id=_cursor(request), limit=PAGE_SIZE
            )
        except BadCursor as exc:
            error = f"{str(exc).capitalize()}; start again from the first page."
            status = 400
    if page:
        subscriptions = queries.subscriptions_by_subscriber(page)
        rows = [
            {
                "s": queries.present_subscriber(s, reveal=reveal),
                "subscriptions": subscriptions[s.pk],
            }
            for s in page
        ]
        if reveal:
            actions.record_subscribers_listed(
                workspace, count=len(page), actor=Actor.from_request(request)
            )
    params = form.params() if form.is_bound and form.is_valid() else {}
    if can_manage:
        add_form = add_form or AddSubscriberForm(lists=lists)
        bulk_form = bulk_form or BulkForm(lists=lists)
    context = {
        "subnav": audience_subnav(request, "subscribers"),
        "form": form,
        "rows": rows,
        "masked": not reveal,
        "can_manage": can_manage,
        "add_form": add_form if can_manage else None,
        "bulk_form": bulk_form if can_manage else None,
        "bulk_actions": BULK_ACTIONS.items(),
        "lists": lists,
        "filtered": bool(params),
        # Where the bulk form returns to: these filters, this page.
        "filters_qs": urlencode({**params, "before": request.GET["before"]})
        if request.GET.get("before", "").isdigit()
        else urlencode(params),
        "paged": request.GET.get("before", "") != "",
        "first_url": "?" + urlencode(params),
        "next_url": "?" + urlencode({**params, "before": cursor}) if cursor else "",
        "error": error,
    }
    return render(request, "audience/subscribers.html", context, status=status)


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def subscribers(request):
    return _subscribers_page(request)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_create(request):
    lists = queries.lists_of(request.workspace)
    form = AddSubscriberForm(request.POST, lists=lists)
    if not form.is_valid():
        return _subscribers_page(request, add_form=form, status=400)
    try:
        subscriber, outcomes = actions.do_add_subscriber(
            request.workspace,
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
            lists=form.chosen_lists(),
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        # Invalid, suppressed or already there: each is about the address.
        form.add_error("email", str(exc))
        return _subscribers_page(request, add_form=form, status=_status_for(exc))
    pending = [o.mailing_list.name for o in outcomes if o.result == "pending_confirmation"]
    text = "The subscriber was added."
    if pending:
        text += f" Unconfirmed on {', '.join(pending)} (double opt-in) until they confirm."
    messages.success(request, text)
    return redirect("audience-subscriber", ws=request.workspace.slug, sid=str(subscriber.uuid))


def _back_to_subscribers(request):
    """Back to the page of subscribers the bulk form was on, with its filters. Only the known
    filter names are carried over, re-encoded, so the redirect stays on this page."""
    given = QueryDict(request.POST.get("filters", ""))
    allowed = [*SubscriberFilterForm.base_fields, "before"]
    kept = {name: given[name] for name in allowed if given.get(name, "") != ""}
    url = reverse("audience-subscribers", kwargs={"ws": request.workspace.slug})
    return redirect(f"{url}?{urlencode(kept)}" if kept else url)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscribers_bulk(request):
    lists = queries.lists_of(request.workspace)
    form = BulkForm(request.POST, lists=lists)
    if not form.is_valid():
        return _subscribers_page(request, bulk_form=form, status=400)
    ids = form.cleaned_data["ids"]
    selected = queries.subscribers_by_uuids(request.workspace, ids)
    if len(selected) != len(ids):
        raise Http404(
            f"{len(ids) - len(selected)} of the selected subscribers are not in this workspace"
        )
    action = form.cleaned_data["action"]
    if action == "delete" and request.POST.get("confirm") != "yes":
        context = {
            "subnav": audience_subnav(request, "subscribers"),
            "selected": [mask_email(s.email) for s in selected],
            "ids": [str(s.uuid) for s in selected],
            "filters": request.POST.get("filters", ""),
        }
        return render(request, "audience/subscribers_delete.html", context)
    try:
        outcome = actions.do_bulk_subscribers(
            request.workspace,
            selected,
            action,
            mailing_list=form.chosen_list(),
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        return _subscribers_page(request, bulk_form=form, error=str(exc), status=_status_for(exc))
    text = f"{BULK_ACTIONS[action].split(' (')[0]}: done for {outcome.done}."
    if outcome.skipped:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(outcome.skipped.items()))
        text += f" Left alone: {skipped}."
    messages.success(request, text)
    return _back_to_subscribers(request)


# -- one subscriber --------------------------------------------------------------------------


def _subscriber_or_404(request, sid: str) -> Subscriber:
    try:
        key = uuid.UUID(sid)
    except ValueError:
        raise Http404("No such subscriber in this workspace") from None
    subscriber = queries.get_subscriber(request.workspace, key)
    if subscriber is None:
        raise Http404("No such subscriber in this workspace")
    return subscriber


def _subscriber_page(
    request,
    subscriber: Subscriber,
    *,
    profile_form=None,
    attributes=None,
    error: str = "",
    status: int = 200,
):
    reveal = sees_personal_data(request)
    membership = request.membership
    can_manage = membership.has(p.AUDIENCE_MANAGE)
    # Editing the profile or attributes shows their values: it needs both permissions.
    can_edit = can_manage and reveal
    subscriptions = queries.subscriptions_of(subscriber)
    on = {s.mailing_list_id for s in subscriptions}
    if can_edit:
        profile_form = profile_form or ProfileForm(
            initial={
                "email": subscriber.email,
                "first_name": subscriber.first_name,
                "last_name": subscriber.last_name,
                "name": subscriber.name,
            }
        )
        attributes = attributes or attribute_formset(subscriber)
    consent = [
        {
            "r": r,
            "ip": r.ip if reveal else ("•••" if r.ip else ""),
            "user_agent": r.user_agent if reveal else ("•••" if r.user_agent else ""),
            # What the person did themselves may be labelled with their own details.
            "source_label": r.source_label
            if reveal or r.source_type != ConsentRecord.SourceType.SUBSCRIBER
            else "",
        }
        for r in queries.consent_history(subscriber)
    ]
    context = {
        "subnav": audience_subnav(request, "subscribers"),
        "subscriber": subscriber,
        "s": queries.present_subscriber(subscriber, reveal=reveal),
        "masked": not reveal,
        "can_manage": can_manage,
        "can_edit": can_edit,
        "can_export": membership.has(p.AUDIENCE_EXPORT) and reveal,
        "profile_form": profile_form if can_edit else None,
        "attributes": attributes if can_edit else None,
        "attribute_help": ATTRIBUTE_RULE_HELP,
        "subscriptions": subscriptions,
        "other_lists": [ml for ml in queries.lists_of(request.workspace) if ml.pk not in on],
        "consent": consent,
        "error": error,
    }
    response = render(request, "audience/subscriber.html", context, status=status)
    if reveal:
        actions.record_subscriber_viewed(subscriber, actor=Actor.from_request(request))
    return response


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def subscriber(request, sid: str):
    return _subscriber_page(request, _subscriber_or_404(request, sid))


def _to_subscriber(request, subscriber):
    return redirect("audience-subscriber", ws=request.workspace.slug, sid=str(subscriber.uuid))


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_profile(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    if not sees_personal_data(request):
        return forbidden(request, p.VIEW_PERSONAL_DATA)
    form = ProfileForm(request.POST)
    if not form.is_valid():
        return _subscriber_page(request, subscriber, profile_form=form, status=400)
    data = form.cleaned_data
    name = data["name"]
    made = display_name(subscriber.first_name, subscriber.last_name)
    if (not name and (data["first_name"] or data["last_name"])) or (made and name == made):
        # Left empty, or still the one made from the names: made from the new ones.
        name = None
    try:
        actions.do_update_subscriber(
            subscriber,
            email=data["email"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            name=name,
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        subscriber.refresh_from_db()
        form.add_error("email", str(exc))
        return _subscriber_page(request, subscriber, profile_form=form, status=_status_for(exc))
    messages.success(request, "Profile saved.")
    return _to_subscriber(request, subscriber)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_attributes(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    if not sees_personal_data(request):
        return forbidden(request, p.VIEW_PERSONAL_DATA)
    formset = attribute_formset(subscriber, request.POST)
    if not formset.is_valid():
        return _subscriber_page(request, subscriber, attributes=formset, status=400)
    try:
        actions.do_update_subscriber(
            subscriber,
            attributes=formset.attributes(),
            merge_attributes=False,
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        subscriber.refresh_from_db()
        return _subscriber_page(
            request, subscriber, attributes=formset, error=str(exc), status=_status_for(exc)
        )
    messages.success(request, "Attributes saved.")
    return _to_subscriber(request, subscriber)


def _posted_list(request):
    raw = request.POST.get("list", "")
    if not raw.isdigit():
        raise Http404("No such list in this workspace")
    mailing_list = queries.get_list(request.workspace, int(raw))
    if mailing_list is None:
        raise Http404("No such list in this workspace")
    return mailing_list


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_subscribe(request, sid: str):
    """Staff subscribing the person to one list, also renewing an unsubscribed membership
    (staff may; an import may not). A double opt-in list leaves them unconfirmed."""
    subscriber = _subscriber_or_404(request, sid)
    mailing_list = _posted_list(request)
    try:
        (outcome,) = actions.do_subscribe(
            subscriber,
            [mailing_list],
            actor=Actor.from_request(request),
            reason=Reason.BY_ADMIN,
            resubscribe=True,
        )
    except ActionError as exc:
        return _subscriber_page(request, subscriber, error=str(exc), status=_status_for(exc))
    messages.success(
        request,
        {
            "subscribed": f"Subscribed to {mailing_list.name}.",
            "pending_confirmation": f"Added to {mailing_list.name} as unconfirmed "
            "(double opt-in): they are mailed once they confirm.",
            "already": f"Already subscribed to {mailing_list.name}.",
        }.get(outcome.result, outcome.result),
    )
    return _to_subscriber(request, subscriber)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_unsubscribe(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    mailing_list = _posted_list(request)
    count = actions.do_unsubscribe(
        subscriber, [mailing_list], actor=Actor.from_request(request), reason=Reason.BY_ADMIN
    )
    if count:
        messages.success(request, f"Unsubscribed from {mailing_list.name} (by staff).")
    else:
        messages.info(request, f"Was not subscribed to {mailing_list.name}.")
    return _to_subscriber(request, subscriber)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_blocklist(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    actions.do_blocklist_subscriber(subscriber, actor=Actor.from_request(request))
    messages.success(request, "Blocklisted: unsubscribed from every list.")
    return _to_subscriber(request, subscriber)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def subscriber_unblock(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    actions.do_unblock_subscriber(subscriber, actor=Actor.from_request(request))
    messages.success(request, "No longer blocklisted. Their lists stay unsubscribed until renewed.")
    return _to_subscriber(request, subscriber)


def _confirm_page(request, subscriber, template: str):
    context = {
        "subnav": audience_subnav(request, "subscribers"),
        "subscriber": subscriber,
        "masked_email": mask_email(subscriber.email),
    }
    return render(request, template, context)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def subscriber_delete(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    if request.method == "GET":
        return _confirm_page(request, subscriber, "audience/subscriber_delete.html")
    actions.do_delete_subscriber(subscriber, actor=Actor.from_request(request))
    messages.success(request, "The subscriber was deleted.")
    return redirect("audience-subscribers", ws=request.workspace.slug)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def subscriber_erase(request, sid: str):
    subscriber = _subscriber_or_404(request, sid)
    if request.method == "GET":
        return _confirm_page(request, subscriber, "audience/subscriber_erase.html")
    actions.do_erase_subscriber(subscriber, actor=Actor.from_request(request))
    messages.success(
        request,
        "The person's data was erased. Their address stays on the suppression list (as a hash), "
        "so they cannot be added or imported again.",
    )
    return redirect("audience-subscribers", ws=request.workspace.slug)


@workspace_view(p.AUDIENCE_EXPORT)
@require_POST
def subscriber_export(request, sid: str):
    """The access request: every row naming the person, as a JSON download (audited by the
    action)."""
    subscriber = _subscriber_or_404(request, sid)
    if not sees_personal_data(request):
        return forbidden(request, p.VIEW_PERSONAL_DATA)
    document = actions.do_export_personal_data(subscriber, actor=Actor.from_request(request))
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False, "indent": 2})
    response["Content-Disposition"] = content_disposition_header(
        True, f"personal-data-{subscriber.uuid}.json"
    )
    response["Cache-Control"] = "no-store"
    return response
