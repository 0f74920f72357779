"""No cache may keep an API answer: most hold people's data, so `no-store, private` is the
default of every answer (lib/http.PrivateByDefaultMiddleware), errors included."""

from __future__ import annotations

import pytest

from .audience_data import make_list, make_person

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(personas):
    news = make_list(personas.acme, "news")
    return make_person(personas.acme, "ann@example.com", name="Ann", lists=[news])


def test_it_forbids_caching_answers_that_hold_personal_data(tokens, as_token, ann):
    owner, analyst = as_token(tokens.owner.raw), as_token(tokens.analyst.raw)
    answers = [
        owner.get("/api/v1/subscribers"),
        owner.get(f"/api/v1/subscribers/{ann.uuid}"),
        owner.get("/api/v1/lists"),
        owner.get("/api/v1/segments"),
        owner.get("/api/v1/me"),
        analyst.get("/api/v1/subscribers"),
        analyst.get("/api/v1/subscribers?q=ann"),  # a 403
        owner.get("/api/v1/subscribers/00000000-0000-4000-8000-000000000000"),  # a 404
        as_token("mm_not-a-token").get("/api/v1/subscribers"),  # a 401
    ]
    for response in answers:
        cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= cache_control, response.request["PATH_INFO"]
