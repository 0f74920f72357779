"""Schemathesis over the whole OpenAPI document (issue 9, F8): whatever a client sends that the
document allows, or nearly allows, the answer is never a 500.

Every operation is called with an owner token (every permission, so the request reaches the
code behind the permission check) with a few generated requests each: MAX_EXAMPLES per
operation, some 250 requests in all, in process through WSGI (no server is started), on the
test database of the run (SQLite, or PostgreSQL with MM_TEST_DATABASE_URL). Generation is
derandomised, so a failure reproduces.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

from mailmarketer.accounts.permissions import Role
from mailmarketer.audience.segments.actions import do_create_segment
from mailmarketer.campaigns import actions as campaigns
from mailmarketer.signup.testing_webinars import make_event
from mailmarketer.testing import make_token
from mailmarketer.wsgi import application

from .audience_data import SETUP, make_list, make_person

MAX_EXAMPLES = 5
# Opens an SMTP connection to the host it is given: not something to point at random hosts.
SKIPPED = {("POST", "/api/v1/senders/{sender_id}/test")}


@pytest.fixture
def existing(personas) -> dict:
    """One of each thing a path can name, in acme, by path parameter."""
    acme = personas.acme
    acme.postal_address = "1 Main Street"
    acme.save()
    news = make_list(acme, "news")
    person = make_person(acme, "ann@example.com", name="Ann", attributes={"city": "Oslo"})
    campaign = campaigns.do_create_campaign(
        acme, actor=SETUP, name="Autumn", subject="Hi", body="Hello", lists=[news]
    )
    city = {"type": "attribute", "name": "city", "value_type": "string", "op": "eq"}
    city["value"] = "Oslo"
    rules = {"version": 1, "root": {"type": "group", "match": "all", "children": [city]}}
    segment = do_create_segment(acme, name="News", rules=rules, actor=SETUP)
    return {
        "list_id": news.slug,
        "subscriber_id": str(person.uuid),
        "campaign_id": str(campaign.uuid),
        "segment_id": str(segment.pk),
        "event_id": str(make_event(acme, SETUP).pk),
    }


schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.API_RATE_PER_MINUTE = 100_000  # the generated requests are not a flood to refuse


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # The requests go through WSGI, whose end closes the database connection Django thinks
    # stale: on PostgreSQL, the one holding the test's transaction. Django's test client
    # disconnects the same handler for its requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],  # not the explicit phase: schemathesis puts hundreds of cases there
    suppress_health_check=list(HealthCheck),
)
def test_it_never_answers_a_server_error(case, personas, existing):
    if (case.method.upper(), case.path) in SKIPPED:
        pytest.skip("opens a network connection")
    # Generated ids would all be 404s: most requests name things that exist, so that the
    # generated bodies and queries reach the code behind the lookup.
    for name, value in existing.items():
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = value
    owner = make_token(personas.acme, Role.OWNER)
    response = case.call(headers={"Authorization": f"Bearer {owner.raw}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} answered {response.status_code}: "
        f"{response.text[:300]}\n{case.as_curl_command()}"
    )
