"""/api/v1/sites and /api/v1/sites/{id}/stats: analytics.view, roll-ups, another workspace
sees nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.api.access import declared_permission, operations
from mailmarketer.api.urls import api
from mailmarketer.tracking import rollup, web
from mailmarketer.tracking.testing_web import make_site


@pytest.fixture
def site(personas):
    site = make_site(personas.acme)
    when = datetime(2026, 11, 2, 9, tzinfo=UTC)
    rows = [
        web.hit_row(site, at=when, key=f"k{n}", path=f"/p{n % 2}", ip=f"192.0.2.{n}", ua="x/1")
        for n in range(3)
    ]
    web.store_rows(rows)
    rollup.rebuild_day(site, when.date())
    return site


def test_it_declares_analytics_view_on_every_sites_route():
    routes = {(m, path): op for m, path, op in operations(api) if "/sites" in path}
    assert routes and all(declared_permission(op) == p.ANALYTICS_VIEW for op in routes.values())


def test_it_lists_the_workspaces_sites_with_their_snippet(tokens, as_token, site):
    body = as_token(tokens.analyst.raw).get("/api/v1/sites").json()
    [one] = body["sites"]
    assert one["id"] == site.pk and one["domain"] == "acme.test"
    assert f'data-site="{site.key}"' in one["snippet"]


def test_it_answers_figures_and_a_dimension_from_roll_ups(tokens, as_token, site):
    client = as_token(tokens.analyst.raw)
    stats = client.get(f"/api/v1/sites/{site.pk}/stats?from=2026-11-02&to=2026-11-02").json()
    assert stats["current"]["pageviews"] == 3 and stats["current"]["visitors"] == 3
    assert stats["previous"]["pageviews"] == 0
    assert [point["pageviews"] for point in stats["series"]] == [3]
    top = client.get(
        f"/api/v1/sites/{site.pk}/stats?from=2026-11-02&to=2026-11-02&dimension=page"
    ).json()
    assert [(r["value"], r["pageviews"]) for r in top["top"]] == [("/p0", 2), ("/p1", 1)]


@pytest.mark.parametrize(
    "query", ["dimension=nope", "from=2026-11-05&to=2026-11-01", "from=2020-01-01&to=2026-01-01",
              "from=notadate"],
)  # fmt: skip
def test_it_refuses_bad_queries_naming_the_field(tokens, as_token, site, query):
    response = as_token(tokens.analyst.raw).get(f"/api/v1/sites/{site.pk}/stats?{query}")
    assert response.status_code == 422


def test_it_shows_mallory_nothing(tokens, as_token, site):
    client = as_token(tokens.mallory.raw)
    assert client.get("/api/v1/sites").json() == {"sites": []}
    assert client.get(f"/api/v1/sites/{site.pk}/stats").status_code == 404


def test_it_refuses_a_role_without_analytics(personas, as_token, site):
    from mailmarketer.accounts.permissions import Role
    from mailmarketer.testing import make_token

    support = make_token(personas.acme, Role.SUPPORT)
    assert as_token(support.raw).get("/api/v1/sites").status_code == 403
    assert as_token(support.raw).get(f"/api/v1/sites/{site.pk}/stats").status_code == 403
