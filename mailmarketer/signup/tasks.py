"""Background jobs of signup, run by the worker (django-tasks' database backend).

The mail about a new lead goes to staff from here, after the submission committed, like the
password-reset mail of accounts/tasks.py: the person who filled the form never waits on the
relay, and a failing relay cannot undo their request.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.urls import reverse
from django_tasks import task

from mailmarketer.accounts.models import Membership
from mailmarketer.accounts.permissions import Role
from mailmarketer.lib import emails

from .models_leads import EvaluationSetup, Lead

logger = logging.getLogger(__name__)


def lead_recipients(lead: Lead) -> list[str]:
    """Who hears of a new lead: its assignee; else the form's chosen recipients; else the
    workspace's owners and admins. Only people who are still members, with active accounts."""
    members = Membership.objects.filter(workspace_id=lead.workspace_id, user__is_active=True)
    if lead.assignee_id:
        chosen = members.filter(user_id=lead.assignee_id)
    else:
        setup = EvaluationSetup.objects.filter(form_id=lead.form_id).first()
        ids = setup.recipients if setup else []
        chosen = members.filter(user_id__in=ids) if ids else members.none()
    if not chosen.exists():
        chosen = members.filter(role__in=[Role.OWNER, Role.ADMIN])
    return sorted(set(chosen.values_list("user__email", flat=True)))


@task()
def notify_new_lead(lead_id: int) -> None:
    """Mails each recipient the link to the lead. Subject and body carry no personal data:
    the mail may sit in shared inboxes; the lead's page shows the person to those allowed."""
    lead = Lead.objects.select_related("workspace").filter(pk=lead_id).first()
    if lead is None:  # erased since
        return
    link = settings.BASE_URL + reverse(
        "leads-detail", kwargs={"ws": lead.workspace.slug, "lead_id": lead.pk}
    )
    for address in lead_recipients(lead):
        emails.send(
            "new_lead",
            to=address,
            context={
                "workspace": lead.workspace.name,
                "number": lead.pk,
                "product": lead.product,
                "link": link,
            },
            workspace_id=lead.workspace_id,
        )
    logger.info("lead %s: notified", lead.pk)
