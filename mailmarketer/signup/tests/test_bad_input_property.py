"""Property: whatever is posted to a form, as a page form or as JSON, the answer is a page or
a JSON error with a 4xx (never a 500), and a refused post stores nothing."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.audience.models import ConsentRecord, Subscriber
from mailmarketer.signup.models import Submission
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import EMBED, make_form_token

from .support import form_url

pytestmark = pytest.mark.django_db

KEYS = [
    "email",
    "consent",
    "lists",
    "company",
    "employees",
    "founded",
    "topic",
    "vip",
    "website",
    "page_url",
    "first_name",
]
scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["ann@example.com", "1", "on", "Tea", "2001-02-03", "1e999", "NaN"]),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), scalars, max_size=2),
)
VALID = {"email": "ann@example.com", "consent": "1", "company": "Beans"}
random_bodies = st.dictionaries(
    st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), values, max_size=8
)
# Half of them start from a valid post, so that odd values reach the writes too.
bodies = st.one_of(random_bodies, random_bodies.map(lambda extra: {**VALID, **extra}))


def stored() -> tuple[int, int, int]:
    return Subscriber.objects.count(), Submission.objects.count(), ConsentRecord.objects.count()


def test_it_answers_any_post_without_a_500_and_stores_nothing_it_refuses(newsletter):
    client = Client(enforce_csrf_checks=True)
    url = form_url(newsletter)

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=bodies, as_json=st.booleans())
    def holds(body, as_json):
        with transaction.atomic():
            body = {
                "form_token": make_form_token(newsletter.pk, EMBED),
                "altcha": altcha_payload(newsletter),
                **body,
            }
            if as_json:
                response = client.post(
                    url + ".json", data=json.dumps(body), content_type="application/json"
                )
            else:
                flat = {
                    k: ("" if v is None else v if isinstance(v, list) else str(v))
                    for k, v in body.items()
                    if not isinstance(v, dict)
                }
                response = client.post(url, data=flat)
            assert response.status_code < 500
            if response.status_code != 200:
                assert stored() == (0, 0, 0), (body, response.status_code)
            transaction.set_rollback(True)

    holds()


def test_it_refuses_a_nul_character_by_field(newsletter):
    # PostgreSQL cannot store NUL in text: it must be a field error, not a database error.
    body = {
        "form_token": make_form_token(newsletter.pk, EMBED),
        "email": "ann@example.com",
        "consent": True,
        "company": "Beans\x00Ltd",
    }
    response = Client().post(
        form_url(newsletter) + ".json", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "company"
    assert stored() == (0, 0, 0)
