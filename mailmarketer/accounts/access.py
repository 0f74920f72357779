"""Access control for views: each view declares, in its decorator, the one permission it needs.

- `workspace_view(PERMISSION)`: the URL carries the workspace slug; a non-member gets 404 (never
  a hint that the workspace exists), a member without the permission gets 403, and a member whose
  workspace requires two-factor authentication for roles that see personal data is sent to set
  it up or to enter a code first.
- `account_view`: any signed-in staff member (their own account pages).
- `public_view`: no sign-in (login, password reset, invitation links, health).

Each decorator stamps the view with `access` (and `required_permission`), and a test walks every
URL pattern to check that none is left without one.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render

from .permissions import check_known, role_sees_personal_data
from .queries import get_membership


def _needs_2fa(request, membership) -> bool:
    return (
        membership.workspace.require_2fa
        and role_sees_personal_data(membership.role)
        and not request.user.is_verified()
    )


def workspace_view(permission: str):
    check_known(permission)

    def decorator(view):
        @wraps(view)
        def wrapped(request, ws: str, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = get_membership(request.user, ws)
            if membership is None:
                raise Http404("No such workspace")
            if _needs_2fa(request, membership):
                query = urlencode({"next": request.get_full_path(), "required": ws})
                return redirect(f"/account/2fa/?{query}")
            request.workspace = membership.workspace
            request.membership = membership
            if not membership.has(permission):
                return render(
                    request,
                    "web/forbidden.html",
                    {"permission": permission},
                    status=403,
                )
            return view(request, *args, **kwargs)

        wrapped.access = "workspace"
        wrapped.required_permission = permission
        return wrapped

    return decorator


def account_view(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    wrapped.access = "account"
    wrapped.required_permission = None
    return wrapped


def public_view(view):
    view.access = "public"
    view.required_permission = None
    return view
