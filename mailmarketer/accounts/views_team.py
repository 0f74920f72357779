"""Workspace pages of accounts: the team, API tokens, the audit log and workspace settings.

Each view names its one permission in its decorator: pages are readable with the *_VIEW
permission, and every change is its own POST route needing the *_MANAGE permission. Writes go
through actions.py; a refusal from an action (ActionError, Conflict) is shown on the page with
a 4xx status. Objects named in a URL are always looked up inside request.workspace, so an id
from another workspace is a 404.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import actions, queries
from . import permissions as p
from .access import workspace_view
from .actions import ActionError, Conflict
from .actors import Actor
from .forms_team import AuditFilterForm, InviteForm, TokenForm, WorkspaceSettingsForm, role_choices
from .permissions import OWNER_ONLY_ROLES, Role

AUDIT_PAGE_SIZE = 50


def _status_for(exc: ActionError) -> int:
    if isinstance(exc, Conflict):
        return 409
    if exc.code == "forbidden":
        return 403
    return 400


def _add_validation_error(form, exc: ValidationError) -> None:
    """Put a model's validation errors on the form fields of the same name."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# -- team --------------------------------------------------------------------------------------


def _team_page(request, *, invite_form=None, error: str = "", status: int = 200):
    membership = request.membership
    can_manage = membership.has(p.TEAM_MANAGE)
    is_owner = membership.role == Role.OWNER
    members = queries.members_of(request.workspace)
    rows = [
        {
            "membership": m,
            "is_me": m.user_id == request.user.pk,
            # Only an owner may change or remove an owner (actions.py enforces it too).
            "can_change": can_manage and (is_owner or m.role not in OWNER_ONLY_ROLES),
        }
        for m in members
    ]
    if can_manage and invite_form is None:
        invite_form = InviteForm(actor_role=membership.role)
    context = {
        "rows": rows,
        "invitations": queries.open_invitations(request.workspace),
        "can_manage": can_manage,
        "role_choices": role_choices(membership.role),
        "invite_form": invite_form,
        "error": error,
        "subnav_current": "team",
    }
    return render(request, "accounts/team.html", context, status=status)


@workspace_view(p.TEAM_VIEW)
@require_GET
def team(request):
    return _team_page(request)


@workspace_view(p.TEAM_MANAGE)
@require_POST
def team_invite(request):
    form = InviteForm(request.POST, actor_role=request.membership.role)
    if not form.is_valid():
        return _team_page(request, invite_form=form, status=400)
    try:
        invitation = actions.do_invite_member(
            request.workspace,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            actor=Actor.from_request(request),
        )
    except ValidationError as exc:
        _add_validation_error(form, exc)
        return _team_page(request, invite_form=form, status=400)
    except ActionError as exc:
        return _team_page(request, invite_form=form, error=str(exc), status=_status_for(exc))
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("team", ws=request.workspace.slug)


def _member_or_404(request, membership_id: int):
    membership = queries.get_member(request.workspace, membership_id)
    if membership is None:
        raise Http404("No such member in this workspace")
    return membership


@workspace_view(p.TEAM_MANAGE)
@require_POST
def team_change_role(request, membership_id: int):
    membership = _member_or_404(request, membership_id)
    role = request.POST.get("role", "")
    try:
        actions.do_change_role(membership, role, actor=Actor.from_request(request))
    except ActionError as exc:
        return _team_page(request, error=str(exc), status=_status_for(exc))
    messages.success(
        request, f"{membership.user.email} is now {Role(membership.role).label.lower()}."
    )
    return redirect("team", ws=request.workspace.slug)


@workspace_view(p.TEAM_MANAGE)
@require_POST
def team_remove(request, membership_id: int):
    membership = _member_or_404(request, membership_id)
    email = membership.user.email
    leaving = membership.user_id == request.user.pk
    try:
        actions.do_remove_member(membership, actor=Actor.from_request(request))
    except ActionError as exc:
        return _team_page(request, error=str(exc), status=_status_for(exc))
    if leaving:
        messages.success(request, f"You have left {request.workspace.name}.")
        return redirect("app-home")
    messages.success(request, f"{email} was removed from the team.")
    return redirect("team", ws=request.workspace.slug)


@workspace_view(p.TEAM_MANAGE)
@require_POST
def team_revoke_invitation(request, invitation_id: int):
    invitation = queries.get_invitation(request.workspace, invitation_id)
    if invitation is None:
        raise Http404("No such invitation in this workspace")
    was_open = invitation.is_open
    actions.do_revoke_invitation(invitation, actor=Actor.from_request(request))
    if was_open:
        messages.success(request, f"The invitation to {invitation.email} was revoked.")
    else:
        messages.info(request, f"The invitation to {invitation.email} was no longer open.")
    return redirect("team", ws=request.workspace.slug)


# -- API tokens --------------------------------------------------------------------------------


def _tokens_page(request, *, form=None, created=None, raw: str = "", error="", status=200):
    context = {
        "tokens": queries.api_tokens_of(request.workspace),
        "form": form or TokenForm(actor_role=request.membership.role),
        "created": created,
        # The raw token exists only in this one response: it is not stored (only its hash is),
        # not put in the session and not in a URL, so it cannot be shown again.
        "raw_token": raw,
        "api_me_url": f"{settings.BASE_URL}/api/v1/me",
        "error": error,
        "subnav_current": "tokens",
    }
    return render(request, "accounts/tokens.html", context, status=status)


@workspace_view(p.TOKENS_MANAGE)
@require_GET
def tokens(request):
    return _tokens_page(request)


@workspace_view(p.TOKENS_MANAGE)
@require_POST
@never_cache  # the response carries the raw token: no cache may keep it
def token_create(request):
    form = TokenForm(request.POST, actor_role=request.membership.role)
    if not form.is_valid():
        return _tokens_page(request, form=form, status=400)
    try:
        token, raw = actions.do_create_api_token(
            request.workspace,
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        return _tokens_page(request, form=form, error=str(exc), status=_status_for(exc))
    return _tokens_page(request, created=token, raw=raw)


@workspace_view(p.TOKENS_MANAGE)
@require_POST
def token_revoke(request, token_id: int):
    token = queries.get_api_token(request.workspace, token_id)
    if token is None:
        raise Http404("No such API token in this workspace")
    if token.revoked_at:
        messages.info(request, f"The token “{token.name}” was already revoked.")
    else:
        actions.do_revoke_api_token(token, actor=Actor.from_request(request))
        messages.success(request, f"The token “{token.name}” was revoked; it no longer works.")
    return redirect("tokens", ws=request.workspace.slug)


@workspace_view(p.TOKENS_MANAGE)
@require_POST
@never_cache  # the response carries the new raw token
def token_reissue(request, token_id: int):
    token = queries.get_api_token(request.workspace, token_id)
    if token is None:
        raise Http404("No such API token in this workspace")
    try:
        new, raw = actions.do_reissue_api_token(token, actor=Actor.from_request(request))
    except ActionError as exc:
        return _tokens_page(request, error=str(exc), status=_status_for(exc))
    return _tokens_page(request, created=new, raw=raw)


# -- audit log ---------------------------------------------------------------------------------


def _compact_json(value) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _shown(value) -> str:
    return value if isinstance(value, str) else _compact_json(value)


def _changes(old, new) -> list[dict] | None:
    """Each field an event changed, as "field: old → new" lines for people (the raw JSON only
    where an event's old or new value is not a set of fields)."""
    if not isinstance(old or {}, dict) or not isinstance(new or {}, dict):
        return None
    old, new = old or {}, new or {}
    return [
        {
            "field": key,
            "had_old": key in old,
            "old": _shown(old.get(key)),
            "has_new": key in new,
            "new": _shown(new.get(key)),
        }
        for key in sorted(set(old) | set(new))
    ]


class BadCursor(ValueError):
    pass


def _cursor(request, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise BadCursor(f"the page link is broken: {name!r} must be a whole number")
    return int(raw)


def _keyset_page(workspace, qs, *, after: int | None, before: int | None):
    """One page of events, newest first, after or before the event with the given id.

    Keyset pagination on (at, id): reading page 100 costs what page 1 costs, and new events
    arriving meanwhile do not shift what "older" means. Returns (rows, newer_id, older_id),
    the ids to put in the "newer" and "older" links (None: no such page)."""
    anchor_id = after or before
    if anchor_id is None:
        rows = list(qs[: AUDIT_PAGE_SIZE + 1])
        older = rows[AUDIT_PAGE_SIZE - 1].pk if len(rows) > AUDIT_PAGE_SIZE else None
        return rows[:AUDIT_PAGE_SIZE], None, older
    # The anchor is looked up inside the workspace's trail only.
    anchor = queries.audit_events(workspace).filter(pk=anchor_id).values_list("at", "id").first()
    if anchor is None:
        raise BadCursor("the page link points to an event that is not in this audit log")
    at, pk = anchor
    if after is not None:
        rows = list(qs.filter(Q(at__lt=at) | Q(at=at, id__lt=pk))[: AUDIT_PAGE_SIZE + 1])
        older = rows[AUDIT_PAGE_SIZE - 1].pk if len(rows) > AUDIT_PAGE_SIZE else None
        newer = rows[0].pk if rows else None
        return rows[:AUDIT_PAGE_SIZE], newer, older
    rows = list(
        qs.filter(Q(at__gt=at) | Q(at=at, id__gt=pk)).order_by("at", "id")[: AUDIT_PAGE_SIZE + 1]
    )
    newer = rows[AUDIT_PAGE_SIZE - 1].pk if len(rows) > AUDIT_PAGE_SIZE else None
    rows = rows[:AUDIT_PAGE_SIZE][::-1]
    older = rows[-1].pk if rows else None
    return rows, newer, older


@workspace_view(p.AUDIT_VIEW)
@require_GET
def audit(request):
    workspace = request.workspace
    form = AuditFilterForm(
        request.GET, event_types=queries.audit_event_types(workspace), tz=workspace.timezone
    )
    context = {"form": form, "rows": [], "subnav_current": "audit", "error": ""}
    if not form.is_valid():
        context["error"] = "Fix the filters below to see the audit log."
        return render(request, "accounts/audit.html", context, status=400)
    filter_params = {
        name: request.GET[name] for name in form.fields if request.GET.get(name, "") != ""
    }
    try:
        events, newer, older = _keyset_page(
            workspace,
            queries.audit_events(workspace, **form.filters()),
            after=_cursor(request, "after"),
            before=_cursor(request, "before"),
        )
    except BadCursor as exc:
        context["error"] = f"{str(exc).capitalize()}; start again from the newest events."
        context["first_url"] = "?" + urlencode(filter_params)
        return render(request, "accounts/audit.html", context, status=400)
    context.update(
        {
            "rows": [
                {
                    "event": e,
                    "old": _compact_json(e.old),
                    "new": _compact_json(e.new),
                    "changes": _changes(e.old, e.new),
                }
                for e in events
            ],
            "filtered": bool(filter_params),
            "first_url": "?" + urlencode(filter_params) if newer else "",
            "newer_url": "?" + urlencode({**filter_params, "before": newer}) if newer else "",
            "older_url": "?" + urlencode({**filter_params, "after": older}) if older else "",
        }
    )
    return render(request, "accounts/audit.html", context)


# -- workspace settings ------------------------------------------------------------------------


def _settings_page(request, *, form=None, error: str = "", status: int = 200):
    can_manage = request.membership.has(p.SETTINGS_MANAGE)
    if can_manage and form is None:
        form = WorkspaceSettingsForm(
            initial=WorkspaceSettingsForm.initial_for(request.workspace),
            current_timezone=request.workspace.timezone,
        )
    context = {
        "form": form if can_manage else None,
        "can_manage": can_manage,
        "error": error,
        "subnav_current": "settings",
        "help": {
            name: field.help_text for name, field in WorkspaceSettingsForm.base_fields.items()
        },
    }
    return render(request, "accounts/settings.html", context, status=status)


@workspace_view(p.SETTINGS_VIEW)
@require_GET
def workspace_settings(request):
    return _settings_page(request)


@workspace_view(p.SETTINGS_MANAGE)
@require_POST
def workspace_settings_save(request):
    form = WorkspaceSettingsForm(request.POST, current_timezone=request.workspace.timezone)
    if not form.is_valid():
        return _settings_page(request, form=form, status=400)
    try:
        actions.do_update_workspace(
            request.workspace, form.cleaned_data, actor=Actor.from_request(request)
        )
    except ValidationError as exc:
        # The action set the new values on the object before validating them: read it back,
        # so the page around the form shows what is stored.
        request.workspace.refresh_from_db()
        _add_validation_error(form, exc)
        return _settings_page(request, form=form, status=400)
    except ActionError as exc:
        request.workspace.refresh_from_db()
        return _settings_page(request, form=form, error=str(exc), status=_status_for(exc))
    messages.success(request, "Workspace settings saved.")
    return redirect("settings-workspace", ws=request.workspace.slug)
