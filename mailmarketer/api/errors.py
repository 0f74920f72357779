"""One error format for every API failure.

    {"code": "not_found", "message": "no such API endpoint: /api/v1/nope"}
    {"code": "validation_failed", "message": "invalid fields: timezone",
     "errors": [{"field": "timezone", "message": "'Mars/Base' is not a known time zone ..."}]}

`install(api)` replaces Django Ninja's default handlers (which answer `{"detail": ...}` and, with
DEBUG on, a plain-text traceback) so that every exception a route can raise maps to this shape:
ninja's ValidationError and Django's ValidationError (422, with field errors), the accounts
actions' ActionError (422 naming its field when it has one, else 400, or 403 for code
"forbidden") and Conflict (409), Http404 and
ObjectDoesNotExist (404), PermissionDenied (403), a body over DATA_UPLOAD_MAX_MEMORY_SIZE (413),
ninja's HttpError family (its own status: 401 for authentication, 429 for throttling) and
anything else (500, logged, no traceback sent).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from ninja.errors import HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from mailmarketer.accounts.actions import ActionError, Conflict

from .schemas import Error

logger = logging.getLogger("mailmarketer.api")

# The realm named in WWW-Authenticate (RFC 6750 section 3).
REALM = "Mail Marketer API"

# The same as Ninja's for successful answers.
CONTENT_TYPE = "application/json; charset=utf-8"

# The error answers each kind of route documents (OpenAPI `responses`): every route can be
# unauthenticated, forbidden, not found, invalid or throttled; a write can also be refused (400)
# or conflict with the state it finds (409).
READ_ERRORS = {401: Error, 403: Error, 404: Error, 422: Error, 429: Error}
WRITE_ERRORS = {**READ_ERRORS, 400: Error, 409: Error}

CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_failed",
    429: "rate_limited",
    500: "server_error",
}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body: dict = {"code": code or CODES.get(status) or HTTPStatus(status).phrase.lower()}
    body["message"] = message
    if errors is not None:
        body["errors"] = errors
    response = JsonResponse(body, status=status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    if status == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
    return response


class ApiError(HttpError):
    """An HttpError with our own code and response headers, raised by the API's own code."""

    def __init__(self, status: int, message: str, *, code: str | None = None, headers=None) -> None:
        super().__init__(status, message)
        self.code = code
        self.headers = headers or {}


def field_errors(errors: list[dict]) -> JsonResponse:
    """422 with the given [{"field", "message"}] list; the message names the fields."""
    names = sorted({e["field"] for e in errors if e["field"]})
    message = f"invalid fields: {', '.join(names)}" if names else "the request is invalid"
    return error_response(422, message, errors=errors)


class FieldErrors(Exception):
    """Raised by routes that re-map a model's field errors onto the names the API uses."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors)
        self.errors = errors


def django_field_errors(exc: DjangoValidationError, rename: dict[str, str] | None = None):
    """[{"field", "message"}] from a Django ValidationError (as full_clean raises it)."""
    rename = rename or {}
    if not hasattr(exc, "error_dict"):
        return [{"field": "", "message": message} for message in exc.messages]
    errors = []
    for name, messages in sorted(exc.message_dict.items()):
        field = "" if name == NON_FIELD_ERRORS else rename.get(name, name)
        errors.extend({"field": field, "message": message} for message in messages)
    return errors


def _pydantic_field(loc: tuple) -> str:
    # Ninja prefixes each location with where the value came from ("body", "query", "path")
    # and, for a body, the name of the view's body parameter: neither is part of what the
    # client sent, so a bad `timezone` in the JSON body is reported as "timezone".
    parts = list(loc)
    source = parts.pop(0) if parts else ""
    if source == "body" and parts:
        parts.pop(0)
    return ".".join(str(part) for part in parts)


def _pydantic_message(error: dict, field: str) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if not field and kind == "missing":
        return "a JSON object is required as the request body"
    if not field and kind in ("model_type", "model_attributes_type", "dict_type"):
        return "the request body must be a JSON object"
    return str(error.get("msg", "invalid value"))


def _on_ninja_validation(request, exc: NinjaValidationError):
    errors = []
    for error in exc.errors:
        field = _pydantic_field(tuple(error.get("loc", ())))
        errors.append({"field": field, "message": _pydantic_message(error, field)})
    return field_errors(errors)


def _on_django_validation(request, exc: DjangoValidationError):
    return field_errors(django_field_errors(exc))


def _on_field_errors(request, exc: FieldErrors):
    return field_errors(exc.errors)


def _on_action_error(request, exc: ActionError):
    if isinstance(exc, Conflict):
        return error_response(409, str(exc), code=exc.code)
    if exc.field:
        return field_errors([{"field": exc.field, "message": str(exc)}])
    status = 403 if exc.code == "forbidden" else 400
    return error_response(status, str(exc), code=exc.code)


def _on_not_found(request, exc: Exception):
    # An Http404's message is written by us for people; ObjectDoesNotExist's names a model.
    message = str(exc) if isinstance(exc, Http404) and str(exc) else "not found"
    return error_response(404, message)


def _on_permission_denied(request, exc: PermissionDenied):
    return error_response(403, str(exc) or "you are not allowed to do this")


def _on_too_big(request, exc: RequestDataTooBig):
    # Django refuses to read a body over the limit; left alone this surfaced as a 500.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(
        413, f"the request body is larger than the {limit:,} bytes accepted: send less per call"
    )


def _on_http_error(request, exc: HttpError):
    message = exc.message
    if isinstance(exc, Throttled):
        message = "too many requests for this token; slow down and retry later"
    elif exc.status_code == 400 and message.startswith("Cannot parse request body"):
        message = "the request body is not valid JSON"
    return error_response(
        exc.status_code,
        message,
        code=getattr(exc, "code", None),
        headers=getattr(exc, "headers", None),
    )


def unexpected(request, exc: Exception):
    # Logged with its traceback for the operator; the client gets no internals, DEBUG or not.
    logger.error("API error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal error; it has been logged")


def install(api) -> None:
    api.add_exception_handler(NinjaValidationError, _on_ninja_validation)
    api.add_exception_handler(DjangoValidationError, _on_django_validation)
    api.add_exception_handler(FieldErrors, _on_field_errors)
    api.add_exception_handler(ActionError, _on_action_error)
    api.add_exception_handler(Http404, _on_not_found)
    api.add_exception_handler(ObjectDoesNotExist, _on_not_found)
    api.add_exception_handler(PermissionDenied, _on_permission_denied)
    api.add_exception_handler(RequestDataTooBig, _on_too_big)
    api.add_exception_handler(HttpError, _on_http_error)
    api.add_exception_handler(Exception, unexpected)
