"""The sending side of the campaign pages: the list of campaigns with their progress
("campaigns-home"), one campaign's page with its status, the buttons its status allows and its
live progress (an htmx fragment polled every 2 s while it sends), the status changes those
buttons make, and the test send from the preview page.

Each view names its one permission in its decorator: campaigns.view to see, campaigns.manage to
schedule, unschedule and send tests, campaigns.send to start, pause, resume, cancel and retry.
Writes go through campaign_actions.py; a refusal is shown on the page with a 4xx status. The
buttons shown are the moves status.TRANSITIONS allows, as the API's routes are. Campaigns are
looked up inside request.workspace only, so another workspace's id is a 404.

The editing pages, the preview and the layouts are campaigns' (campaigns/views_*.py); these
pages reuse their lookups and navigation.
"""

from __future__ import annotations

import zoneinfo
from urllib.parse import urlencode

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
from mailmarketer.campaigns import queries
from mailmarketer.campaigns.actions import TemplateError
from mailmarketer.campaigns.forms import TestSendForm
from mailmarketer.campaigns.models import EDITABLE_STATUSES, Campaign
from mailmarketer.campaigns.views_campaigns import (
    campaign_or_404,
    status_for,
    subnav,
)
from mailmarketer.campaigns.views_preview import (
    chosen_subscriber,
    forbidden_page,
    preview_page,
    sees_personal_data,
)

from . import campaign_actions as actions
from . import queries as ledger
from .forms import CampaignFilterForm, CancelForm, ScheduleForm
from .send_check import empty_variables, send_check
from .status import MOVES, allowed_from, moves_for

Status = Campaign.Status
PAGE_SIZE = 50
POLL_SECONDS = 2


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
    return render(request, "delivery/campaigns.html", context, status=status)


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
    launched = campaign.started_at is not None
    progress = ledger.campaign_progress(campaign) if launched else None
    status = campaign.status
    # The buttons are status.MOVES, as the API's routes are; retry only with failed messages.
    allowed = moves_for(status, request.membership.permissions)
    actions_shown = {name: name in allowed for name in MOVES}
    actions_shown["retry"] &= progress is not None and progress.failed > 0
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
    return render(request, "delivery/campaign.html", context, status=status)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_detail(request, campaign_id: int):
    return campaign_page(request, campaign_or_404(request, campaign_id))


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_progress(request, campaign_id: int):
    """The status-and-progress block alone: what the page polls while the campaign sends."""
    campaign = campaign_or_404(request, campaign_id)
    return render(request, "delivery/_live.html", live_context(request, campaign))


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


@workspace_view(MOVES["start"].permission)
@require_http_methods(["GET", "POST"])
def campaign_start(request, campaign_id: int):
    """GET: the page before sending (send_check: who gets it, what they see, where it goes);
    its one button POSTs here and starts."""
    campaign = campaign_or_404(request, campaign_id)
    if request.method == "GET":
        if campaign.status not in MOVES["start"].starts_from:
            return redirect("campaign", ws=request.workspace.slug, campaign_id=campaign.pk)
        context = {
            "subnav": subnav(request, "campaigns"),
            "campaign": campaign,
            "check": send_check(campaign, reveal=request.membership.has(p.VIEW_PERSONAL_DATA)),
            "lists": list(campaign.lists.order_by("name")),
        }
        return render(request, "delivery/start.html", context)
    try:
        actions.do_start_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "Sending has started.")


@workspace_view(MOVES["schedule"].permission)
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


@workspace_view(MOVES["unschedule"].permission)
@require_POST
def campaign_unschedule(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        actions.do_unschedule_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "No longer scheduled: the campaign is a draft again.")


@workspace_view(MOVES["pause"].permission)
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


@workspace_view(MOVES["resume"].permission)
@require_POST
def campaign_resume(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    try:
        actions.do_resume_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return _refused(request, campaign, exc)
    return _done(request, campaign, "Sending again, from where it stopped.")


@workspace_view(MOVES["cancel"].permission)
@require_http_methods(["GET", "POST"])
def campaign_cancel(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if Status.CANCELLED not in allowed_from(campaign.status):
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
    return render(request, "delivery/cancel.html", context, status=400 if form.is_bound else 200)


@workspace_view(MOVES["retry"].permission)
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


# -- test sends (from the preview page) ---------------------------------------------------------


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def campaign_test_send(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    raw = request.POST.get("as", "")
    if raw and not sees_personal_data(request):
        return forbidden_page(request, p.VIEW_PERSONAL_DATA)
    subscriber = chosen_subscriber(request, raw)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        return preview_page(request, campaign, test_form=form, status=400)
    try:
        actions.do_send_test(
            campaign,
            form.cleaned_data["to"],
            actor=Actor.from_request(request),
            subscriber=subscriber,
        )
    except TemplateError as exc:
        return preview_page(
            request, campaign, test_form=form, error=f"Not sent: {exc}", status=status_for(exc)
        )
    except ActionError as exc:  # the addresses
        form.add_error("to", str(exc))
        return preview_page(request, campaign, test_form=form, status=status_for(exc))
    messages.success(request, f"Test sent to {form.cleaned_data['to']}.")
    url = reverse(
        "campaign-preview", kwargs={"ws": request.workspace.slug, "campaign_id": campaign.pk}
    )
    return redirect(f"{url}?{urlencode({'as': raw})}" if raw else url)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_empty_variables(request, campaign_id: int):
    """The empty-variable warning as a fragment, which the campaign's preview page loads (the
    sample of real recipients is the audience's, which the campaigns package cannot see)."""
    campaign = campaign_or_404(request, campaign_id)
    report = empty_variables(campaign, reveal=request.membership.has(p.VIEW_PERSONAL_DATA))
    return render(
        request,
        "delivery/_empty_variables.html",
        {"sampled": report.sampled, "empty": report.empty, "fragment": True},
    )
