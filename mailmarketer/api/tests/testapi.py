"""A second API, built like the real one, with routes the real one must never have: one per
kind of failure, and one that forgot its @require. Tests mount it with
@pytest.mark.urls("mailmarketer.api.tests.testapi")."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import path

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.models import Workspace
from mailmarketer.api.access import require
from mailmarketer.api.base import build_api

test_api = build_api(urls_namespace="test-api")


@test_api.get("/declared")
@require(p.WORKSPACE_VIEW)
def declared(request):
    return {"workspace": request.workspace.slug}


@test_api.get("/undeclared")
def undeclared(request):
    return {"workspace": request.workspace.slug}


@test_api.get("/crash")
@require(p.WORKSPACE_VIEW)
def crash(request):
    raise RuntimeError("secret internals: password=hunter2")


@test_api.get("/action-error")
@require(p.WORKSPACE_VIEW)
def action_error(request):
    raise ActionError("give the list a name")


@test_api.get("/action-forbidden")
@require(p.WORKSPACE_VIEW)
def action_forbidden(request):
    raise ActionError("only an owner can do that", code="forbidden")


@test_api.get("/conflict")
@require(p.WORKSPACE_VIEW)
def conflict(request):
    raise Conflict("a list with that name already exists")


@test_api.get("/http404")
@require(p.WORKSPACE_VIEW)
def http404(request):
    raise Http404("no such list")


@test_api.get("/does-not-exist")
@require(p.WORKSPACE_VIEW)
def does_not_exist(request):
    return Workspace.objects.get(slug="no-such-workspace")


@test_api.get("/model-invalid")
@require(p.WORKSPACE_VIEW)
def model_invalid(request):
    raise ValidationError({"name": ["This field cannot be blank."], "__all__": ["Not both."]})


@test_api.get("/plain-invalid")
@require(p.WORKSPACE_VIEW)
def plain_invalid(request):
    raise ValidationError("That will not do.")


urlpatterns = [path("t/", test_api.urls)]
