"""One error format for every failure: {"code", "message"}, plus "errors" for 422."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache

from mailmarketer.api.throttling import TokenRateThrottle

pytestmark = pytest.mark.django_db

mounted = pytest.mark.urls("mailmarketer.api.tests.testapi")


def assert_error(response, status, code, message=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message
    return body


@mounted
def test_it_answers_500_in_json_without_internals(tokens, as_token, caplog):
    with caplog.at_level(logging.ERROR, logger="mailmarketer.api"):
        response = as_token(tokens.owner.raw).get("/t/crash")
    assert_error(response, 500, "server_error", "internal error; it has been logged")
    assert "hunter2" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    # ...while the operator gets the whole story in the log.
    record = next(r for r in caplog.records if r.name == "mailmarketer.api")
    assert record.exc_info and "hunter2" in str(record.exc_info[1])


@mounted
def test_it_answers_500_in_json_even_with_debug_on(tokens, as_token, settings):
    settings.DEBUG = True
    response = as_token(tokens.owner.raw).get("/t/crash")
    assert_error(response, 500, "server_error")
    assert "Traceback" not in response.content.decode()


def test_it_answers_500_in_json_when_the_rate_limiter_breaks(tokens, as_token, monkeypatch):
    # The throttle runs outside Ninja's error handling; the API's own safety net catches it.
    def broken(*args, **kwargs):
        raise ConnectionError("cache server unreachable")

    monkeypatch.setattr(cache, "incr", broken)
    response = as_token(tokens.owner.raw).get("/api/v1/me")
    assert_error(response, 500, "server_error")
    assert "unreachable" not in response.content.decode()


@mounted
def test_it_maps_an_action_error_to_400(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/action-error")
    assert_error(response, 400, "invalid", "give the list a name")


@mounted
def test_it_maps_a_forbidden_action_error_to_403(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/action-forbidden")
    assert_error(response, 403, "forbidden", "only an owner can do that")


@mounted
def test_it_maps_a_conflict_to_409(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/conflict")
    assert_error(response, 409, "conflict", "a list with that name already exists")


@mounted
def test_it_maps_http404_to_404_with_its_message(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/http404")
    assert_error(response, 404, "not_found", "no such list")


@mounted
def test_it_maps_a_missing_object_to_404_without_naming_the_model(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/does-not-exist")
    assert_error(response, 404, "not_found", "not found")


@mounted
def test_it_maps_a_model_validation_error_to_422_with_fields(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/model-invalid")
    body = assert_error(response, 422, "validation_failed", "invalid fields: name")
    assert body["errors"] == [
        {"field": "", "message": "Not both."},
        {"field": "name", "message": "This field cannot be blank."},
    ]


@mounted
def test_it_maps_a_plain_validation_error_to_422(tokens, as_token):
    response = as_token(tokens.owner.raw).get("/t/plain-invalid")
    body = assert_error(response, 422, "validation_failed", "the request is invalid")
    assert body["errors"] == [{"field": "", "message": "That will not do."}]


def test_it_answers_an_unknown_path_with_json_404(tokens, as_token):
    for path in ("/api/v1/nope", "/api/v1/", "/api/v1/me/", "/api/v1/workspace/1"):
        response = as_token(tokens.owner.raw).get(path)
        body = assert_error(response, 404, "not_found")
        assert path in body["message"]


def test_it_answers_a_wrong_method_with_json_405(tokens, as_token):
    response = as_token(tokens.owner.raw).request("DELETE", "/api/v1/workspace")
    assert_error(response, 405, "method_not_allowed")
    assert set(response["Allow"].split(", ")) == {"GET", "PATCH"}


# -- rate limit ---------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    now = [60 * 1000 + 10.0]  # ten seconds into a one-minute window
    monkeypatch.setattr(TokenRateThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def test_it_limits_requests_per_token(tokens, as_token, settings, clock):
    settings.API_RATE_PER_MINUTE = 2
    owner = as_token(tokens.owner.raw)
    assert owner.get("/api/v1/me").status_code == 200
    assert owner.get("/api/v1/me").status_code == 200
    response = owner.get("/api/v1/me")
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "50"
    # Another token has its own count.
    assert as_token(tokens.marketer.raw).get("/api/v1/me").status_code == 200


def test_it_lets_a_limited_token_in_again_next_minute(tokens, as_token, settings, clock):
    settings.API_RATE_PER_MINUTE = 1
    owner = as_token(tokens.owner.raw)
    assert owner.get("/api/v1/me").status_code == 200
    assert owner.get("/api/v1/me").status_code == 429
    clock[0] += 50
    assert owner.get("/api/v1/me").status_code == 200
