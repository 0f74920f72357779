"""The permission each audience route declares: changing one, or adding a route under these
paths, fails here until this table says so (docs/api.md's route table says the same)."""

from __future__ import annotations

from mailmarketer.accounts import permissions as p
from mailmarketer.api.access import declared_permission, operations
from mailmarketer.api.urls import api

AUDIENCE_ROUTES = {
    ("GET", "/subscribers"): p.AUDIENCE_VIEW,
    ("POST", "/subscribers"): p.AUDIENCE_MANAGE,
    ("GET", "/subscribers/{subscriber_id}"): p.AUDIENCE_VIEW,
    ("PATCH", "/subscribers/{subscriber_id}"): p.AUDIENCE_MANAGE,
    ("DELETE", "/subscribers/{subscriber_id}"): p.AUDIENCE_MANAGE,
    ("POST", "/subscribers/{subscriber_id}/erase"): p.AUDIENCE_MANAGE,
    # ... and audience.view_personal_data, checked in the view (test_subscribers.py).
    ("GET", "/subscribers/{subscriber_id}/export"): p.AUDIENCE_EXPORT,
    ("GET", "/lists"): p.AUDIENCE_VIEW,
    ("POST", "/lists"): p.AUDIENCE_MANAGE,
    ("GET", "/lists/{list_id}"): p.AUDIENCE_VIEW,
    ("PATCH", "/lists/{list_id}"): p.AUDIENCE_MANAGE,
    ("DELETE", "/lists/{list_id}"): p.AUDIENCE_MANAGE,
    ("POST", "/lists/{list_id}/subscriptions"): p.AUDIENCE_MANAGE,
    ("GET", "/segments"): p.AUDIENCE_VIEW,
    ("POST", "/segments"): p.AUDIENCE_MANAGE,
    ("GET", "/segments/{segment_id}/count"): p.AUDIENCE_VIEW,
    ("POST", "/imports"): p.AUDIENCE_MANAGE,
    ("GET", "/imports/{import_id}"): p.AUDIENCE_VIEW,
}
PREFIXES = ("/subscribers", "/lists", "/segments", "/imports")


def test_it_guards_each_audience_route_with_its_permission():
    found = {
        (method, path): declared_permission(operation)
        for method, path, operation in operations(api)
        if path.startswith(PREFIXES)
    }
    assert found == AUDIENCE_ROUTES
