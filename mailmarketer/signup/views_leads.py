"""The staff's lead pages under /app/<ws>/leads/ (docs/leads.md), and an evaluation form's setup
(/app/<ws>/forms/<id>/evaluation/).

Reading needs leads.view; changing status, assignee or notes leads.manage. Without
audience.view_personal_data the person (address, name) and the free text (message, notes) are
masked; a page shown unmasked writes an audit row ("lead.viewed", or "leads.listed" with the
count). Leads named in a URL are looked up in request.workspace only: another's is a 404.
"""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.emails import mask_email

from . import leads, queries
from . import queries_leads as lq
from .fields import FormError
from .models import Form
from .models_leads import Lead

PAGE_SIZE = 100
MASK = "•••"


def _filters(request) -> tuple[lq.LeadFilters, dict]:
    """The filters from the query string; a value that is not one is ignored, and said."""
    get = request.GET
    filters, problems = lq.LeadFilters(), {}
    status = get.get("status", "")
    if status in Lead.Status.values:
        filters.status = status
    elif status:
        problems["status"] = "unknown status"
    assignee = get.get("assignee", "")
    if assignee == "none" or assignee.isdigit():
        filters.assignee = assignee
    elif assignee:
        problems["assignee"] = "unknown assignee"
    filters.product = get.get("product", "")[:200]
    for key in ("since", "until"):
        raw = get.get(key, "")
        if raw:
            try:
                setattr(filters, key, date.fromisoformat(raw))
            except ValueError:
                problems[key] = "a date as YYYY-MM-DD"
    return filters, problems


def person_of(lead: Lead, unmasked: bool) -> dict:
    subscriber = lead.subscriber
    name = subscriber.name or (lead.submission.name if lead.submission_id else "")
    if not unmasked:
        return {"email": mask_email(subscriber.email), "name": MASK if name else ""}
    return {"email": subscriber.email, "name": name}


@workspace_view(p.LEADS_VIEW)
@require_GET
def leads_home(request):
    filters, problems = _filters(request)
    unmasked = request.membership.has(p.VIEW_PERSONAL_DATA)
    rows = list(lq.leads_for(request.workspace, filters)[:PAGE_SIZE])
    if unmasked:
        leads.record_leads_listed(request.workspace, len(rows), actor=Actor.from_request(request))
    context = {
        "rows": [{"lead": lead, **person_of(lead, unmasked)} for lead in rows],
        "filters": filters,
        "problems": problems,
        "statuses": Lead.Status.choices,
        "team": lq.team(request.workspace),
        "products": lq.products_in_use(request.workspace),
        "page_size": PAGE_SIZE,
    }
    return render(request, "signup/leads.html", context)


def _lead_or_404(request, lead_id: int) -> Lead:
    lead = lq.get_lead(request.workspace, lead_id)
    if lead is None:
        raise Http404("No such lead in this workspace")
    return lead


def _detail(request, lead: Lead, *, problem: str = "", status: int = 200):
    unmasked = request.membership.has(p.VIEW_PERSONAL_DATA)
    if unmasked:
        leads.record_lead_viewed(lead, actor=Actor.from_request(request))
    events = list(lq.history(lead))
    if not unmasked:
        for event in events:
            if event.field == "notes":
                event.old, event.new = (MASK if event.old else ""), (MASK if event.new else "")
    context = {
        "lead": lead,
        "person": person_of(lead, unmasked),
        "unmasked": unmasked,
        "message": lead.message if unmasked else (MASK if lead.message else ""),
        "notes": lead.notes if unmasked else (MASK if lead.notes else ""),
        "events": events,
        "can_manage": request.membership.has(p.LEADS_MANAGE),
        "next_statuses": sorted(Lead.TRANSITIONS[Lead.Status(lead.status)]),
        "team": lq.team(request.workspace),
        "problem": problem,
    }
    return render(request, "signup/lead_detail.html", context, status=status)


@workspace_view(p.LEADS_VIEW)
@require_GET
def lead_detail(request, lead_id: int):
    return _detail(request, _lead_or_404(request, lead_id))


@workspace_view(p.LEADS_MANAGE)
@require_http_methods(["POST"])
def lead_update(request, lead_id: int):
    """Status, assignee and notes from the lead's page: only the fields the form sent (notes
    are sent only by those who may see them, so a masked page cannot blank them)."""
    lead = _lead_or_404(request, lead_id)
    post = request.POST
    try:
        lead = leads.do_update_lead(
            lead,
            status=post.get("status") or None,
            assignee=(post.get("assignee") or None) if "assignee" in post else leads.UNSET,
            notes=post.get("notes") if "notes" in post else None,
            actor=Actor.from_request(request),
        )
    except FormError as exc:
        return _detail(request, _lead_or_404(request, lead_id), problem=str(exc), status=400)
    messages.success(request, f"Lead #{lead.pk} was saved.")
    return redirect("leads-detail", ws=request.workspace.slug, lead_id=lead.pk)


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def form_evaluation(request, form_id: int):
    """The products an evaluation form offers, its assignee and who hears of new leads."""
    form = queries.get_form(request.workspace, form_id)
    if form is None or form.kind != Form.Kind.EVALUATION:
        raise Http404("No such evaluation form in this workspace")
    setup = leads.setup_of(form)
    problem, status = "", 200
    values = {
        "products": "\n".join(setup.products) if setup else "",
        "assignee": str(setup.assignee_id or "") if setup else "",
        "recipients": [str(r) for r in (setup.recipients if setup else [])],
    }
    if request.method == "POST":
        values = {
            "products": request.POST.get("products", "")[:10000],
            "assignee": request.POST.get("assignee", ""),
            "recipients": request.POST.getlist("recipients"),
        }
        try:
            leads.do_set_evaluation(
                form,
                products=values["products"],
                assignee=values["assignee"] or None,
                recipients=values["recipients"],
                actor=Actor.from_request(request),
            )
        except FormError as exc:
            problem, status = str(exc), 400
        else:
            messages.success(request, f"The evaluation form “{form.name}” was set up.")
            return redirect("forms-detail", ws=request.workspace.slug, form_id=form.pk)
    context = {
        "form": form,
        "values": values,
        "team": lq.team(request.workspace),
        "problem": problem,
    }
    return render(request, "signup/form_evaluation.html", context, status=status)
