"""Every operation declares the permission it needs, and the declaration is what is enforced."""

from __future__ import annotations

import pytest
from ninja.errors import ConfigError

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.permissions import CATALOGUE
from mailmarketer.api.access import declared_permission, operations, require, undeclared_operations
from mailmarketer.api.tests.testapi import test_api
from mailmarketer.api.urls import api

EXPECTED = {
    ("GET", "/me"): p.WORKSPACE_VIEW,
    ("GET", "/workspace"): p.SETTINGS_VIEW,
    ("GET", "/leads"): p.LEADS_VIEW,
    ("PATCH", "/leads/{lead_id}"): p.LEADS_MANAGE,
    ("PATCH", "/workspace"): p.SETTINGS_MANAGE,
    ("GET", "/events"): p.FORMS_VIEW,
    ("POST", "/events"): p.FORMS_MANAGE,
    ("GET", "/events/{event_id}"): p.FORMS_VIEW,
    ("PATCH", "/events/{event_id}"): p.FORMS_MANAGE,
    ("POST", "/events/{event_id}/cancel"): p.FORMS_MANAGE,
    ("GET", "/events/{event_id}/registrants"): p.FORMS_VIEW,
}


def test_it_declares_a_permission_on_every_operation():
    assert undeclared_operations(api) == [], (
        "each API operation needs @require(PERMISSION) directly above its function "
        "(mailmarketer/api/access.py)"
    )


def test_it_walks_every_operation_of_the_api():
    found = {(method, path): declared_permission(op) for method, path, op in operations(api)}
    assert EXPECTED.items() <= found.items()
    assert all(permission in CATALOGUE for permission in found.values())


def test_it_notices_an_operation_without_a_permission():
    assert undeclared_operations(test_api) == ["GET /undeclared"]


@pytest.mark.django_db
@pytest.mark.urls("mailmarketer.api.tests.testapi")
def test_it_closes_an_operation_without_a_permission(tokens, as_token):
    owner = as_token(tokens.owner.raw)
    assert owner.get("/t/declared").json() == {"workspace": "acme"}
    response = owner.get("/t/undeclared")
    assert response.status_code == 403
    assert response.json()["message"] == (
        "this route declares no permission, so it is closed to everyone"
    )


def test_it_refuses_a_permission_not_in_the_catalogue():
    with pytest.raises(ValueError, match=r"unknown permission 'campaigns\.launch_missiles'"):
        require("campaigns.launch_missiles")


def test_it_refuses_require_above_the_route_decorator():
    from mailmarketer.api.base import build_api

    scratch = build_api(urls_namespace="scratch")
    with pytest.raises(ConfigError, match="below @api"):

        @require(p.WORKSPACE_VIEW)
        @scratch.get("/upside-down")
        def upside_down(request):
            return {}
