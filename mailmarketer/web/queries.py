"""Reads for the dashboard: real counts only, each shown to those allowed to follow it."""

from __future__ import annotations

from datetime import timedelta

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import ApiToken, Membership
from mailmarketer.accounts.queries import audit_events
from mailmarketer.lib import outbox


def _link(name, ws):
    try:
        return reverse(name, kwargs={"ws": ws})
    except NoReverseMatch:
        return None


def dashboard_cards(request) -> list[dict]:
    workspace = request.workspace
    membership = request.membership
    ws = workspace.slug
    cards = [
        {
            "label": "team members",
            "value": Membership.objects.filter(workspace=workspace).count(),
            "url": _link("team", ws) if membership.has(p.TEAM_VIEW) else None,
            "link_text": "Team",
        }
    ]
    if membership.has(p.TOKENS_MANAGE):
        cards.append(
            {
                "label": "active API tokens",
                "value": ApiToken.objects.filter(workspace=workspace, revoked_at=None).count(),
                "url": _link("tokens", ws),
                "link_text": "API tokens",
            }
        )
    if membership.has(p.AUDIT_VIEW):
        week = timezone.now() - timedelta(days=7)
        cards.append(
            {
                "label": "audit events in 7 days",
                "value": audit_events(workspace, since=week).count(),
                "url": _link("audit", ws),
                "link_text": "Audit log",
            }
        )
    if membership.has(p.OUTBOX_VIEW):
        cards.append(
            {
                "label": "messages in the outbox",
                "value": outbox.count_messages(
                    outbox.Viewer(workspace_id=workspace.pk, email=request.user.email)
                ),
                "url": _link("outbox", ws),
                "link_text": "Outbox",
            }
        )
    return cards
