"""Who may call what: bearer-token authentication and the permission each operation declares.

Every operation is written

    @api.get("/me", response=...)
    @require(p.WORKSPACE_VIEW)
    def me(request): ...

`require` gives the operation its own `TokenAuth(permission)`, so the permission is checked as
part of authentication: before the body is parsed or validated (a token that may not PATCH gets
403 whatever it sends, never a 422 that describes the payload) and before the view runs. The
API's default auth is `TokenAuth(None)`, which refuses every request with 403: a route someone
adds without `@require` is closed, and `undeclared_operations(api)` (walked by a test) names it.

A token belongs to one workspace and has one role; the request runs inside that workspace
(`request.workspace`). There is no way to address another workspace through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from ninja.errors import ConfigError
from ninja.security import HttpBearer
from ninja.utils import contribute_operation_callback

from mailmarketer.accounts.actions import touch_api_token
from mailmarketer.accounts.permissions import check_known
from mailmarketer.accounts.queries import get_token_by_raw

from .errors import REALM, ApiError

HOW_TO_AUTHENTICATE = "send the header 'Authorization: Bearer <token>'"


class TokenAuth(HttpBearer):
    """Authenticates `Authorization: Bearer <token>` and checks the operation's permission.

    On success: request.api_token and request.auth are the ApiToken, request.workspace its
    workspace, and the token's last-used time is recorded. A missing, malformed, unknown or
    revoked token is 401 (unknown and revoked read the same, so a caller learns nothing about
    which tokens exist), and so is a token whose owner left, was deactivated or lost the role
    it needs (ApiToken.stopped_reason, said in the message to whoever holds the secret); a
    token whose role lacks the permission is 403.
    """

    def __init__(self, permission: str | None):
        self.permission = check_known(permission) if permission is not None else None
        super().__init__()

    def __call__(self, request):
        header = request.headers.get(self.header, "")
        if not header.strip():
            raise ApiError(401, f"authentication required: {HOW_TO_AUTHENTICATE}")
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip() or " " in raw.strip():
            raise ApiError(
                401,
                f"malformed Authorization header: {HOW_TO_AUTHENTICATE}",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_request"'},
            )
        return self.authenticate(request, raw.strip())

    def authenticate(self, request, token):
        api_token = get_token_by_raw(token)
        if api_token is None:
            raise ApiError(
                401,
                "unknown or revoked API token",
                code="invalid_token",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
            )
        if api_token.stopped:
            raise ApiError(
                401,
                f"this API token no longer works: {api_token.stopped}; an admin of the "
                "workspace can re-issue it on the API tokens page",
                code="invalid_token",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
            )
        request.api_token = api_token
        request.workspace = api_token.workspace
        touch_api_token(api_token)
        if self.permission is None:
            raise ApiError(403, "this route declares no permission, so it is closed to everyone")
        if self.permission not in api_token.permissions:
            raise ApiError(
                403,
                f"this token's role ({api_token.role}) does not have the permission "
                f"{self.permission!r} that this route needs",
            )
        return api_token


def require(permission: str):
    """Declares the permission an operation needs. Goes below `@api.<method>(...)`."""
    check_known(permission)

    def decorator(view):
        if hasattr(view, "_ninja_operation"):
            raise ConfigError(
                f"{view.__name__}: put @require(...) below @api.<method>(...), "
                "directly above the function"
            )
        view.required_permission = permission
        contribute_operation_callback(view, partial(_install, permission))
        return view

    return decorator


def _install(permission: str, operation) -> None:
    # Runs when Ninja builds the Operation; auth_param survives the clone Ninja makes when it
    # mounts the router, and an explicit auth is never replaced by the API's default.
    auth = [TokenAuth(permission)]
    operation.auth_param = auth
    operation._set_auth(auth)
    operation.openapi_extra = {**(operation.openapi_extra or {}), "x-permission": permission}
    needs = f"Needs the permission `{permission}`."
    described = operation.description
    operation.description = f"{described}\n\n{needs}" if described else needs


def operations(api) -> Iterator[tuple[str, str, object]]:
    """(method, path, operation) for every operation of the API, as mounted."""
    for bound in api._get_bound_routers():
        for path, path_view in bound.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    yield method, f"{bound.prefix}{path}", operation


def declared_permission(operation) -> str | None:
    """The permission the operation is guarded by, or None when nothing declares one."""
    permission = getattr(operation.view_func, "required_permission", None)
    guards = [cb for cb in operation.auth_callbacks if isinstance(cb, TokenAuth)]
    if permission is None or len(guards) != len(operation.auth_callbacks) or not guards:
        return None
    if any(guard.permission != permission for guard in guards):
        return None
    return permission


def undeclared_operations(api) -> list[str]:
    """'METHOD path' of each operation that is not guarded by a declared permission."""
    return [
        f"{method} {path}"
        for method, path, operation in operations(api)
        if declared_permission(operation) is None
    ]
