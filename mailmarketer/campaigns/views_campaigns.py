"""Campaign pages: the list ("campaigns-home"), writing a campaign (create, edit, attachments,
clone, delete) and one campaign's page with its status, the actions its status allows, and its
live progress (an htmx fragment polled every 2 s while it sends).

Each view names its one permission in its decorator: campaigns.view to see, campaigns.manage to
write, schedule, clone and delete, campaigns.send to start, pause, resume, cancel and retry.
Writes go through actions.py; a refusal is shown on the page with a 4xx status (a template
error on the field it names, with its line). Campaigns are looked up inside request.workspace
only, so another workspace's id is a 404.

These pages are the UI over two domains: the campaign and its ledger. Reads of the ledger come
from delivery.queries (the UI sits above both, as the API does).
"""

from __future__ import annotations

import zoneinfo

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.queries import lists_of
from mailmarketer.audience.segments.queries import segments_for
from mailmarketer.delivery import queries as ledger

from . import actions, queries
from .forms import (
    AttachmentForm,
    CampaignFilterForm,
    CampaignForm,
    CancelForm,
    ScheduleForm,
    field_for,
    header_formset,
)
from .models import EDITABLE_STATUSES, TRANSITIONS, Campaign

Status = Campaign.Status
PAGE_SIZE = 50
POLL_SECONDS = 2


# -- shared by the campaign pages ------------------------------------------------------------


def status_for(exc: ActionError) -> int:
    if isinstance(exc, Conflict):
        return 409
    if exc.code == "forbidden":
        return 403
    return 400


def campaign_or_404(request, campaign_id: int) -> Campaign:
    campaign = queries.get_campaign(request.workspace, int(campaign_id))
    if campaign is None:
        raise Http404("No such campaign in this workspace")
    return campaign


def subnav(request, current: str) -> list[dict]:
    ws = request.workspace.slug
    items = [
        ("campaigns", "Campaigns", reverse("campaigns-home", kwargs={"ws": ws})),
        ("layouts", "Layouts", reverse("campaign-layouts", kwargs={"ws": ws})),
    ]
    return [
        {"key": key, "label": label, "url": url, "current": key == current}
        for key, label, url in items
    ]


def _zone(workspace):
    return zoneinfo.ZoneInfo(workspace.timezone)


def local_input(workspace, moment) -> str:
    """An aware time as a datetime-local input shows it, in the workspace's time zone."""
    if moment is None:
        return ""
    return timezone.localtime(moment, _zone(workspace)).strftime("%Y-%m-%dT%H:%M")


# -- the list --------------------------------------------------------------------------------


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaigns_home(request):
    form = CampaignFilterForm(request.GET)
    status = 200
    error = ""
    rows = []
    page = None
    if not form.is_valid():
        error = "Fix the filter below to see campaigns."
        status = 400
    else:
        chosen = form.cleaned_data["status"] or None
        kind = form.cleaned_data["kind"] or Campaign.Kind.MARKETING
        campaigns = (
            queries.campaigns_for(request.workspace, chosen)
            .filter(kind=kind)
            .prefetch_related("lists")
        )
        paginator = Paginator(campaigns, PAGE_SIZE)
        number = request.GET.get("page", "1")
        if not number.isdigit() or not 1 <= int(number) <= paginator.num_pages:
            raise Http404("No such page of campaigns")
        page = paginator.page(int(number))
        counts = ledger.sent_and_total(list(page.object_list))
        rows = [
            {"c": c, "sent": counts[c.pk][0], "total": counts[c.pk][1]} for c in page.object_list
        ]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "subnav": subnav(request, "campaigns"),
        "form": form,
        "rows": rows,
        "page": page,
        "query": query.urlencode(),
        "filtered": any(request.GET.get(k) for k in ("status", "kind")),
        "can_manage": request.membership.has(p.CAMPAIGNS_MANAGE),
        "error": error,
    }
    return render(request, "campaigns/home.html", context, status=status)


# -- writing a campaign ----------------------------------------------------------------------


def _campaign_form(request, data=None, **kwargs) -> CampaignForm:
    workspace = request.workspace
    return CampaignForm(
        data,
        workspace=workspace,
        lists=lists_of(workspace),
        segments=segments_for(workspace),
        layouts=queries.layouts_for(workspace),
        default_layout=queries.default_layout_for(workspace),
        **kwargs,
    )


def _put_error(form, headers, exc: ActionError) -> str:
    """The action's refusal onto the field it names; returns it when it names none."""
    name = field_for(exc)
    if name == "headers":
        headers._non_form_errors = headers.error_class([str(exc)])
        return ""
    if name is not None and name in form.fields:
        form.add_error(name, str(exc))
        return ""
    return str(exc)


def _edit_page(
    request, form, headers, *, campaign=None, attachment_form=None, error="", status=200
):
    context = {
        "subnav": subnav(request, "campaigns"),
        "campaign": campaign,
        "form": form,
        "headers": headers,
        "attachments": queries.attachments_of(campaign) if campaign else [],
        "attachment_form": attachment_form or AttachmentForm(),
        "error": error,
    }
    return render(request, "campaigns/edit.html", context, status=status)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_new(request):
    if request.method == "GET":
        form = _campaign_form(request, initial={"body_format": Campaign.Format.MARKDOWN})
        return _edit_page(request, form, header_formset())
    form = _campaign_form(request, request.POST)
    headers = header_formset(request.POST)
    if not (form.is_valid() and headers.is_valid()):
        return _edit_page(request, form, headers, status=400)
    try:
        campaign = actions.do_create_campaign(
            request.workspace,
            actor=Actor.from_request(request),
            **form.changes(),
            headers=headers.headers(),
        )
    except ActionError as exc:
        error = _put_error(form, headers, exc)
        return _edit_page(request, form, headers, error=error, status=status_for(exc))
    messages.success(request, f"The campaign “{campaign.name}” was saved as a draft.")
    return redirect("campaign", ws=request.workspace.slug, campaign_id=campaign.pk)


def _not_editable(request, campaign):
    return campaign_page(
        request,
        campaign,
        error=f"This campaign is {campaign.get_status_display().lower()}: only drafts and "
        "scheduled campaigns can be changed. Clone it to start from its content.",
        status=409,
    )


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_edit(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if campaign.status not in EDITABLE_STATUSES:
        return _not_editable(request, campaign)
    if request.method == "GET":
        form = _campaign_form(request, initial=CampaignForm.initial_for(campaign))
        return _edit_page(request, form, header_formset(campaign=campaign), campaign=campaign)
    form = _campaign_form(request, request.POST)
    headers = header_formset(request.POST)
    if not (form.is_valid() and headers.is_valid()):
        return _edit_page(request, form, headers, campaign=campaign, status=400)
    try:
        actions.do_update_campaign(
            campaign,
            {**form.changes(), "headers": headers.headers()},
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        campaign.refresh_from_db()
        error = _put_error(form, headers, exc)
        return _edit_page(
            request, form, headers, campaign=campaign, error=error, status=status_for(exc)
        )
    messages.success(request, f"The campaign “{campaign.name}” was saved.")
    return redirect("campaign", ws=request.workspace.slug, campaign_id=campaign.pk)


def _attachment_error(request, campaign, attachment_form, error="", status=400):
    form = _campaign_form(request, initial=CampaignForm.initial_for(campaign))
    return _edit_page(
        request,
        form,
        header_formset(campaign=campaign),
        campaign=campaign,
        attachment_form=attachment_form,
        error=error,
        status=status,
    )


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def attachment_add(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if campaign.status not in EDITABLE_STATUSES:
        return _not_editable(request, campaign)
    form = AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        return _attachment_error(request, campaign, form)
    upload = form.cleaned_data["file"]
    try:
        attachment = actions.do_add_attachment(
            campaign,
            filename=upload.name,
            content_type=form.content_type(),
            data=upload.read(),
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        form.add_error("file", str(exc))
        return _attachment_error(request, campaign, form, status=status_for(exc))
    messages.success(request, f"Attached {attachment.filename}.")
    url = reverse(
        "campaign-edit", kwargs={"ws": request.workspace.slug, "campaign_id": campaign.pk}
    )
    return redirect(f"{url}#attachments")


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def attachment_remove(request, campaign_id: int, attachment_id: int):
    campaign = campaign_or_404(request, campaign_id)
    attachment = queries.get_attachment(campaign, attachment_id)
    if attachment is None:
        raise Http404("No such attachment on this campaign")
    try:
        actions.do_remove_attachment(attachment, actor=Actor.from_request(request))
    except ActionError as exc:
        return campaign_page(request, campaign, error=str(exc), status=status_for(exc))
    messages.success(request, f"Removed {attachment.filename}.")
    url = reverse(
        "campaign-edit", kwargs={"ws": request.workspace.slug, "campaign_id": campaign.pk}
    )
    return redirect(f"{url}#attachments")


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def campaign_clone(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    clone = actions.do_clone_campaign(campaign, actor=Actor.from_request(request))
    messages.success(request, f"Cloned as the draft “{clone.name}”.")
    return redirect("campaign-edit", ws=request.workspace.slug, campaign_id=clone.pk)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_delete(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if campaign.status != Status.DRAFT:
        return campaign_page(
            request,
            campaign,
            error=f"Only drafts can be deleted; this campaign is "
            f"{campaign.get_status_display().lower()}. Cancel it instead: its record stays.",
            status=409,
        )
    if request.method == "GET":
        context = {"subnav": subnav(request, "campaigns"), "campaign": campaign}
        return render(request, "campaigns/delete.html", context)
    try:
        actions.do_delete_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return campaign_page(request, campaign, error=str(exc), status=status_for(exc))
    messages.success(request, f"The draft “{campaign.name}” was deleted.")
    return redirect("campaigns-home", ws=request.workspace.slug)


# -- one campaign: status, actions, progress -------------------------------------------------


def _eta_text(seconds: int | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds / 3600
    return f"about {hours:.1f} hours"


def live_context(request, campaign: Campaign, *, schedule_form=None) -> dict:
    """What the status-and-progress block shows (the page, and the fragment it polls)."""
    membership = request.membership
    can_send = membership.has(p.CAMPAIGNS_SEND)
    can_manage = membership.has(p.CAMPAIGNS_MANAGE)
    allowed = TRANSITIONS[campaign.status]
    launched = campaign.started_at is not None
    progress = ledger.campaign_progress(campaign) if launched else None
    status = campaign.status
    actions_shown = {
        "start": can_send and status in (Status.DRAFT, Status.SCHEDULED),
        "schedule": can_manage and status in (Status.DRAFT, Status.SCHEDULED),
        "unschedule": can_manage and status == Status.SCHEDULED,
        "pause": can_send and Status.PAUSED in allowed,
        "resume": can_send and status in (Status.PAUSED, Status.FAILED),
        "cancel": can_send and Status.CANCELLED in allowed,
        "retry": can_send
        and progress is not None
        and progress.failed > 0
        and status in (Status.RUNNING, Status.PAUSED, Status.FAILED, Status.FINISHED),
    }
    if actions_shown["schedule"] and schedule_form is None:
        schedule_form = ScheduleForm(
            timezone=campaign.workspace.timezone,
            initial={"when": local_input(campaign.workspace, campaign.scheduled_at)},
        )
    return {
        "campaign": campaign,
        "progress": progress,
        "eta": _eta_text(progress.eta_seconds) if progress else "",
        "polling": status == Status.RUNNING,
        "poll_seconds": POLL_SECONDS,
        "show": actions_shown,
        "any_action": any(actions_shown.values()),
        "schedule_form": schedule_form,
    }


def campaign_page(
    request, campaign: Campaign, *, error="", error_link=None, schedule_form=None, status=200
):
    campaign.refresh_from_db()
    context = {
        "subnav": subnav(request, "campaigns"),
        **live_context(request, campaign, schedule_form=schedule_form),
        "lists": list(campaign.lists.order_by("name")),
        "exclude_lists": list(campaign.exclude_lists.order_by("name")),
        "exclude_segments": list(campaign.exclude_segments.order_by("name")),
        "attachments": queries.attachments_of(campaign),
        "can_manage": request.membership.has(p.CAMPAIGNS_MANAGE),
        "editable": campaign.status in EDITABLE_STATUSES,
        "error": error,
        "error_link": error_link,
    }
    return render(request, "campaigns/campaign.html", context, status=status)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_detail(request, campaign_id: int):
    return campaign_page(request, campaign_or_404(request, campaign_id))


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_progress(request, campaign_id: int):
    """The status-and-progress block alone: what the page polls while the campaign sends."""
    campaign = campaign_or_404(request, campaign_id)
    return render(request, "campaigns/_live.html", live_context(request, campaign))


def _refused(request, campaign, exc: ActionError, **kwargs):
    link = None
    if exc.code == "postal_address_required":
        link = {
            "url": reverse("settings-workspace", kwargs={"ws": request.workspace.slug}),
            "label": "Add the postal address in the workspace settings",
        }
    return campaign_page(
        request, campaign, error=str(exc), error_link=link, status=status_for(exc), **kwargs
    )


def _done(request, campaign, text: str):
    messages.success(request, text)
    return redirect("campaign", ws=request.workspace.slug, campaign_id=campaign.pk)


@workspace_view(p.CAMPAIGNS_SEND)
@require_POST
def campaign_start(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        actions.do_start_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "Sending has started.")


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def campaign_schedule(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    form = ScheduleForm(request.POST, timezone=request.workspace.timezone)
    if not form.is_valid():
        return campaign_page(request, campaign, schedule_form=form, status=400)
    try:
        actions.do_schedule_campaign(
            campaign, form.cleaned_data["when"], actor=Actor.from_request(request)
        )
    except ActionError as exc:
        if exc.code in ("invalid_time", "invalid") and not isinstance(exc, Conflict):
            form.add_error("when", str(exc))
            return campaign_page(request, campaign, schedule_form=form, status=status_for(exc))
        return _refused(request, campaign, exc, schedule_form=form)
    when = timezone.localtime(campaign.scheduled_at, _zone(request.workspace))
    return _done(
        request,
        campaign,
        f"Scheduled for {when:%Y-%m-%d %H:%M} ({request.workspace.timezone}).",
    )


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def campaign_unschedule(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        actions.do_unschedule_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "No longer scheduled: the campaign is a draft again.")


@workspace_view(p.CAMPAIGNS_SEND)
@require_POST
def campaign_pause(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        actions.do_pause_campaign(
            campaign, actor=Actor.from_request(request), reason="paused by staff"
        )
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "Paused. Messages already handed to the relay still arrive.")


@workspace_view(p.CAMPAIGNS_SEND)
@require_POST
def campaign_resume(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        actions.do_resume_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "Sending again, from where it stopped.")


@workspace_view(p.CAMPAIGNS_SEND)
@require_http_methods(["GET", "POST"])
def campaign_cancel(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if Status.CANCELLED not in TRANSITIONS[campaign.status]:
        return campaign_page(
            request,
            campaign,
            error=f"A {campaign.get_status_display().lower()} campaign cannot be cancelled.",
            status=409,
        )
    form = CancelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_cancel_campaign(
                campaign, actor=Actor.from_request(request), reason=form.cleaned_data["reason"]
            )
        except ActionError as exc:
            return _refused(request, campaign, exc)
        return _done(request, campaign, "Cancelled. Messages not yet sent will not be.")
    progress = ledger.campaign_progress(campaign) if campaign.started_at else None
    context = {
        "subnav": subnav(request, "campaigns"),
        "campaign": campaign,
        "form": form,
        "progress": progress,
    }
    return render(request, "campaigns/cancel.html", context, status=400 if form.is_bound else 200)


@workspace_view(p.CAMPAIGNS_SEND)
@require_POST
def campaign_retry(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        count = actions.do_retry_failed(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    campaign.refresh_from_db()
    text = f"{count} failed message{'s' if count != 1 else ''} queued again."
    if campaign.status == Status.PAUSED:
        text += " They go out when the campaign is resumed."
    elif campaign.status == Status.FAILED:
        text += " Resume the campaign to send them."
    return _done(request, campaign, text)
