"""/me and /workspace: who the token is, and the settings of its workspace."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from ninja import Router

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import do_update_workspace
from mailmarketer.accounts.actors import Actor
from mailmarketer.lib.http import client_ip

from .access import require
from .errors import FieldErrors, django_field_errors
from .schemas import Error, Me, WorkspaceOut, WorkspacePatch

router = Router(tags=["workspace"])

READ_ERRORS = {401: Error, 403: Error, 429: Error}
WRITE_ERRORS = {**READ_ERRORS, 400: Error, 409: Error, 422: Error}

# Model fields that the API shows under another name.
API_NAMES = {
    "consent_store_ip": "privacy.consent_store_ip",
    "tracking_mode": "privacy.tracking_mode",
    "tracking_requires_consent": "privacy.tracking_requires_consent",
}


def workspace_out(workspace) -> dict:
    return {
        "slug": workspace.slug,
        "name": workspace.name,
        "sender_name": workspace.sender_name,
        "sender_email": workspace.sender_email,
        "postal_address": workspace.postal_address,
        "timezone": workspace.timezone,
        "require_2fa": workspace.require_2fa,
        "privacy": {
            "consent_store_ip": workspace.consent_store_ip,
            "tracking_mode": workspace.tracking_mode,
            "tracking_requires_consent": workspace.tracking_requires_consent,
        },
    }


@router.get("/me", response={200: Me, **READ_ERRORS}, summary="The token and its workspace")
@require(p.WORKSPACE_VIEW)
def me(request):
    token = request.api_token
    return {
        "workspace": {"slug": request.workspace.slug, "name": request.workspace.name},
        "token": {"name": token.name, "prefix": token.prefix, "role": token.role},
        "permissions": sorted(token.permissions),
    }


@router.get("/workspace", response={200: WorkspaceOut, **READ_ERRORS}, summary="Workspace settings")
@require(p.SETTINGS_VIEW)
def get_workspace(request):
    return workspace_out(request.workspace)


@router.patch(
    "/workspace",
    response={200: WorkspaceOut, **WRITE_ERRORS},
    summary="Change workspace settings",
)
@require(p.SETTINGS_MANAGE)
def patch_workspace(request, payload: WorkspacePatch):
    """Send only the fields to change. Each change is recorded in the audit log with its old
    and new value."""
    changes = payload.model_dump(exclude_unset=True, exclude={"privacy"})
    if payload.privacy is not None:
        changes.update(payload.privacy.model_dump(exclude_unset=True))
    actor = Actor.for_token(request.api_token, client_ip(request))
    try:
        workspace = do_update_workspace(request.workspace, changes, actor=actor)
    except ValidationError as exc:
        raise FieldErrors(django_field_errors(exc, rename=API_NAMES)) from exc
    return workspace_out(workspace)
