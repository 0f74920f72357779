"""Reads for accounts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from .models import (
    ApiToken,
    AuditEvent,
    Invitation,
    Membership,
    RecoveryCode,
    TotpDevice,
    User,
    hash_token,
)


def memberships_for_user(user) -> list[Membership]:
    return list(
        Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")
    )


def get_membership(user, workspace_slug: str) -> Membership | None:
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__slug=workspace_slug)
        .first()
    )


def members_of(workspace) -> list[Membership]:
    return list(
        Membership.objects.filter(workspace=workspace)
        .select_related("user")
        .order_by("user__email")
    )


def open_invitations(workspace) -> list[Invitation]:
    return list(
        Invitation.objects.filter(
            workspace=workspace, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
        ).order_by("-created_at")
    )


def _with_owner_role(tokens):
    """Tokens annotated with `owner_role` (their owner's role in the workspace now, None when
    not a member) and `stopped` (ApiToken.stopped_reason, "" when it works): one query."""
    owner_role = Membership.objects.filter(
        workspace_id=OuterRef("workspace_id"), user_id=OuterRef("created_by_id")
    ).values("role")[:1]
    found = list(tokens.select_related("created_by").annotate(owner_role=Subquery(owner_role)))
    for token in found:
        token.stopped = "" if token.revoked_at else token.stopped_reason(token.owner_role)
    return found


def api_tokens_of(workspace) -> list[ApiToken]:
    return _with_owner_role(
        ApiToken.objects.filter(workspace=workspace).order_by("revoked_at", "-created_at")
    )


def get_token_by_raw(raw: str) -> ApiToken | None:
    """The unrevoked token with this secret, with `stopped` saying why it no longer works
    ("" when it does: the caller must check)."""
    if not raw:
        return None
    found = _with_owner_role(
        ApiToken.objects.select_related("workspace").filter(
            key_hash=hash_token(raw), revoked_at=None
        )
    )
    return found[0] if found else None


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def confirmed_device(user: User) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed=True).first()


def audit_events(workspace, *, event: str = "", actor: str = "", since=None, until=None):
    """The workspace's audit trail, newest first, with the given filters. Sign-ins are recorded
    without a workspace, so they are shown for the workspace's members (failed ones by the
    address they were aimed at)."""
    members = Membership.objects.filter(workspace=workspace)
    qs = AuditEvent.objects.filter(
        Q(workspace=workspace)
        | Q(workspace=None, actor_user_id__in=members.values("user_id"))
        # A failed sign-in names no user (the address typed may not exist): those aimed at a
        # member's address belong to this workspace's trail, and no others (they would tell
        # one workspace about attempts on another's people).
        | Q(
            workspace=None,
            event="auth.login_failed",
            object_repr__in=members.values("user__email"),
        )
    )
    if event:
        qs = qs.filter(event__startswith=event)
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-at", "-id")


def login_failures(email: str, ip: str | None) -> tuple[int, int]:
    """Failed logins in the throttle window: (for this address, from this IP)."""
    return recent_auth_events("auth.login_failed", email, ip)


def recent_auth_events(event: str, email: str, ip: str | None) -> tuple[int, int]:
    """Audit events of one kind in the throttle window: (for this address, from this IP).
    Counting the audit log makes the limits hold across every web process."""
    since = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW)
    recent = AuditEvent.objects.filter(event=event, at__gte=since)
    by_email = recent.filter(object_repr=User.objects.normalize_email(email)[:200]).count()
    by_ip = recent.filter(ip=ip).count() if ip else 0
    return by_email, by_ip


# -- lookups by id for the workspace pages: always inside the workspace, so an id from another
# workspace is simply not found.


def get_member(workspace, membership_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("user", "workspace")
        .filter(workspace=workspace, pk=membership_id)
        .first()
    )


def get_invitation(workspace, invitation_id: int) -> Invitation | None:
    return (
        Invitation.objects.select_related("workspace")
        .filter(workspace=workspace, pk=invitation_id)
        .first()
    )


def get_api_token(workspace, token_id: int) -> ApiToken | None:
    found = _with_owner_role(
        ApiToken.objects.select_related("workspace").filter(workspace=workspace, pk=token_id)
    )
    return found[0] if found else None


def audit_event_types(workspace) -> list[str]:
    """The distinct event names in the workspace's audit trail, for the filter."""
    return list(
        audit_events(workspace).order_by("event").values_list("event", flat=True).distinct()
    )


# -- sign-in lookups (views_auth)


def get_user_by_email(email: str) -> User | None:
    """The staff user with this address, compared as logins compare it (case-insensitively)."""
    return User.objects.filter(email=User.objects.normalize_email(email)).first()


def get_active_user(user_id) -> User | None:
    return User.objects.filter(pk=user_id, is_active=True).first()


def unconfirmed_device(user: User) -> TotpDevice | None:
    """The authenticator being set up (scanned but not yet confirmed with a code), if any."""
    return TotpDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
