"""Reads of leads for the staff pages and the API; every one scoped to a workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailmarketer.accounts.models import Membership

from .models_leads import Lead, LeadEvent


@dataclass
class LeadFilters:
    status: str = ""
    assignee: str = ""  # a user id, "none" for unassigned, "" for anyone
    product: str = ""
    since: date | None = None  # created on or after this UTC day
    until: date | None = None  # created on or before this UTC day


def leads_for(workspace, filters: LeadFilters | None = None):
    """Newest first (by id, so keyset pages are stable)."""
    filters = filters or LeadFilters()
    qs = Lead.objects.filter(workspace=workspace).select_related(
        "subscriber", "assignee", "submission"
    )
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(assignee_id=int(filters.assignee))
    if filters.product:
        qs = qs.filter(product=filters.product)
    if filters.since:
        qs = qs.filter(created_at__gte=datetime.combine(filters.since, time(), tzinfo=UTC))
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time(), tzinfo=UTC)
        qs = qs.filter(created_at__lt=end)
    return qs.order_by("-id")


def get_lead(workspace, lead_id) -> Lead | None:
    return (
        Lead.objects.filter(workspace=workspace, pk=lead_id)
        .select_related("subscriber", "assignee", "form", "submission")
        .first()
    )


def history(lead: Lead):
    return LeadEvent.objects.filter(workspace_id=lead.workspace_id, lead=lead).order_by("at", "pk")


def products_in_use(workspace) -> list[str]:
    return list(
        Lead.objects.filter(workspace=workspace)
        .order_by("product")
        .values_list("product", flat=True)
        .distinct()
    )


def team(workspace) -> list:
    """The members a lead may be assigned to, by name."""
    return [
        m.user
        for m in Membership.objects.filter(workspace=workspace, user__is_active=True)
        .select_related("user")
        .order_by("user__name", "user__email")
    ]
