"""The one catalogue of permissions and the roles that hold them.

Every view and API route names one of these strings (see access.py); a test checks that each
route does and that every name used exists here. A role is nothing but a set of these.
"""

from __future__ import annotations

from django.db import models

WORKSPACE_VIEW = "workspace.view"  # the dashboard and /api/v1/me
AUDIENCE_VIEW = "audience.view"  # lists and subscribers, masked
AUDIENCE_MANAGE = "audience.manage"  # add, edit, unsubscribe, import
VIEW_PERSONAL_DATA = "audience.view_personal_data"  # emails, names and IPs unmasked (audited)
AUDIENCE_EXPORT = "audience.export"  # exports leave the system: audited
FORMS_VIEW = "forms.view"  # forms, their counts and embed code; no personal data
FORMS_MANAGE = "forms.manage"
LEADS_VIEW = "leads.view"  # evaluation requests; the person masked without view_personal_data
LEADS_MANAGE = "leads.manage"  # status, assignee, notes of a lead
CAMPAIGNS_VIEW = "campaigns.view"
CAMPAIGNS_MANAGE = "campaigns.manage"  # write and schedule
CAMPAIGNS_SEND = "campaigns.send"  # start, pause, cancel
ANALYTICS_VIEW = "analytics.view"
SETTINGS_VIEW = "settings.view"
SETTINGS_MANAGE = "settings.manage"  # workspace settings, sending servers, privacy
TEAM_VIEW = "team.view"
TEAM_MANAGE = "team.manage"  # invite, change roles, remove members
TOKENS_MANAGE = "tokens.manage"  # API tokens
AUDIT_VIEW = "audit.view"
# The outbox holds every message the system sent while no SMTP relay is configured, password
# reset links included, so only those who could reset access anyway may read it.
OUTBOX_VIEW = "outbox.view"

CATALOGUE: dict[str, str] = {
    WORKSPACE_VIEW: "See the workspace and its dashboard",
    AUDIENCE_VIEW: "See lists and subscribers (personal data masked)",
    AUDIENCE_MANAGE: "Add, change, unsubscribe and import subscribers",
    VIEW_PERSONAL_DATA: (
        "See and search email addresses, names, attribute values and IP addresses, and read "
        "the outbox (each look is audited)"
    ),
    AUDIENCE_EXPORT: "Export subscribers and personal data",
    FORMS_VIEW: "See sign-up forms and how many people used them",
    FORMS_MANAGE: "Build and publish sign-up forms",
    LEADS_VIEW: "See evaluation requests (leads) and their history",
    LEADS_MANAGE: "Change a lead's status, assignee and notes",
    CAMPAIGNS_VIEW: "See campaigns and their reports",
    CAMPAIGNS_MANAGE: "Write and schedule campaigns",
    CAMPAIGNS_SEND: "Start, pause and cancel sending",
    ANALYTICS_VIEW: "See analytics and reports",
    SETTINGS_VIEW: "See workspace settings",
    SETTINGS_MANAGE: "Change workspace settings, sending servers and privacy settings",
    TEAM_VIEW: "See who is in the team",
    TEAM_MANAGE: "Invite people, change roles, remove members",
    TOKENS_MANAGE: "Create and revoke API tokens",
    AUDIT_VIEW: "Read the audit log",
    OUTBOX_VIEW: "Read the local outbox",
}


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    ANALYST = "analyst", "Analyst"
    SUPPORT = "support", "Support"


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(CATALOGUE),
    Role.ADMIN: frozenset(CATALOGUE),
    Role.MARKETER: frozenset(
        {
            WORKSPACE_VIEW,
            AUDIENCE_VIEW,
            AUDIENCE_MANAGE,
            VIEW_PERSONAL_DATA,
            AUDIENCE_EXPORT,
            FORMS_VIEW,
            FORMS_MANAGE,
            LEADS_VIEW,
            LEADS_MANAGE,
            CAMPAIGNS_VIEW,
            CAMPAIGNS_MANAGE,
            CAMPAIGNS_SEND,
            ANALYTICS_VIEW,
            SETTINGS_VIEW,
            TEAM_VIEW,
        }
    ),
    # Analysts read reports and never see who is who.
    Role.ANALYST: frozenset(
        {
            WORKSPACE_VIEW,
            AUDIENCE_VIEW,
            FORMS_VIEW,
            LEADS_VIEW,
            CAMPAIGNS_VIEW,
            ANALYTICS_VIEW,
            TEAM_VIEW,
        }
    ),
    # Support looks one person up and acts on their request (unsubscribe, erase), audited.
    Role.SUPPORT: frozenset(
        {WORKSPACE_VIEW, AUDIENCE_VIEW, AUDIENCE_MANAGE, VIEW_PERSONAL_DATA, TEAM_VIEW}
    ),
}

# Only owners may make or unmake owners (an admin cannot promote themselves past the owner).
OWNER_ONLY_ROLES = frozenset({Role.OWNER})


def permissions_for(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset())


def role_sees_personal_data(role: str) -> bool:
    return VIEW_PERSONAL_DATA in permissions_for(role)


def check_known(permission: str) -> str:
    if permission not in CATALOGUE:
        raise ValueError(f"unknown permission {permission!r}: add it to accounts/permissions.py")
    return permission
