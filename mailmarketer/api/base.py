"""The NinjaAPI the project mounts at /api/v1/, with our auth, throttle, errors and docs.

`build_api()` makes one; urls.py makes the real one and adds the routers, tests make their own
to mount routes the real API must not have (one that crashes, one without a permission).
"""

from __future__ import annotations

from functools import wraps
from inspect import iscoroutinefunction

from django.http import HttpResponseNotAllowed
from django.urls import URLPattern, path, re_path
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI

from . import errors
from .access import TokenAuth
from .docs import LocalSwagger
from .throttling import TokenRateThrottle

DESCRIPTION = """\
The Mail Marketer REST API. Authenticate every call with an API token (Settings, API tokens,
or `mailmarketer token create`) sent as `Authorization: Bearer <token>`. A token belongs to one
workspace and has one role; each operation names the permission it needs.

Errors are JSON `{"code": "...", "message": "..."}`, with `"errors": [{"field", "message"}]`
for 422. Each token may make a limited number of requests per minute (429 beyond it, with
`Retry-After`).
"""


class MailMarketerAPI(NinjaAPI):
    """NinjaAPI whose every answer under its prefix is JSON in our error format, including
    unknown paths, wrong methods and crashes outside Ninja's own error handling."""

    def _get_urls(self):
        patterns = [
            _json_answers(p) if isinstance(p, URLPattern) else p for p in super()._get_urls()
        ]
        # Ninja's root view raises a bare Http404 outside its error handling; ours answers
        # JSON. It keeps the name "api-root", which Ninja reverses to find the API's prefix.
        patterns = [p for p in patterns if getattr(p, "name", None) != "api-root"]
        patterns.append(path("", _not_found, name="api-root"))
        patterns.append(re_path(r"^.*$", _not_found, name="api-not-found"))
        return patterns


@csrf_exempt
def _not_found(request, *args, **kwargs):
    return errors.error_response(
        404, f"no such API endpoint: {request.path} (see the docs at /api/v1/docs)"
    )


def _json_answers(pattern: URLPattern) -> URLPattern:
    """Ninja answers a wrong method with an empty 405, and an exception raised outside its
    handlers (in a throttle, say) reaches Django's HTML 500 page: both become our JSON."""
    view = pattern.callback
    if iscoroutinefunction(view):
        return pattern

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except Exception as exc:
            return errors.unexpected(request, exc)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            return errors.error_response(
                405,
                f"{request.method} is not allowed here; allowed: {allowed}",
                headers={"Allow": allowed},
            )
        return response

    return URLPattern(pattern.pattern, wrapped, pattern.default_args, pattern.name)


def build_api(*, urls_namespace: str = "api") -> MailMarketerAPI:
    api = MailMarketerAPI(
        title="Mail Marketer API",
        version="1",
        description=DESCRIPTION,
        urls_namespace=urls_namespace,
        docs=LocalSwagger(),
        # Closed by default: an operation without @require(...) refuses every token.
        auth=TokenAuth(None),
        throttle=TokenRateThrottle(),
    )
    errors.install(api)
    return api
