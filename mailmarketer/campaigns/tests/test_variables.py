"""The empty-variable report (campaigns/variables.py): which variables the templates print
without a fallback, and how many of the people given would see nothing there."""

from __future__ import annotations

import pytest

from mailmarketer.campaigns import rendering
from mailmarketer.campaigns.models import Campaign
from mailmarketer.campaigns.variables import EXAMPLES, SAMPLE, empty_variables, references

pytestmark = pytest.mark.django_db


def person(i, **fields):
    return {"id": i, "uuid": "", "email": f"person{i}@example.com", "attributes": {}, **fields}


@pytest.fixture
def campaign(personas):
    return Campaign(
        workspace=personas.acme,
        name="Winter",
        subject="{{ subscriber.first_name }}, our winter roast is here",
        body="We ship to {{ subscriber.attributes.city | title }} in two days. "
        "{{ subscriber.last_name | default('') }}",
    )


def test_it_counts_who_would_see_nothing_with_examples(campaign):
    people = [person(i) for i in range(8)] + [
        person(8, first_name="Ann", attributes={"city": "Oslo"})
    ]
    report = empty_variables(campaign, people, reveal=True)
    assert report.sampled == 9
    first, city = report.empty
    assert (first.expression, first.empty) == ("subscriber.first_name", 8)
    assert (city.expression, city.empty) == ("subscriber.attributes.city", 8)
    assert len(first.examples) == EXAMPLES and first.examples[0] == "person0@example.com"


def test_it_masks_the_examples_for_a_viewer_without_personal_data(campaign):
    report = empty_variables(campaign, [person(0)], reveal=False)
    assert report.empty[0].examples == ["p•••@example.com"]


def test_a_first_name_made_from_a_full_name_is_not_empty(campaign):
    report = empty_variables(
        campaign,
        [
            person(0, name="Ann Berg", attributes={"city": "Oslo"}),
            person(1, name="Brun", last_name="Brun", attributes={"city": "Oslo"}),
        ],
        reveal=True,
    )
    (first,) = report.empty
    # Only a last name known: no first name is guessed from it.
    assert first.examples == ["person1@example.com"]


def test_it_samples_at_most_two_hundred(campaign):
    report = empty_variables(campaign, (person(i) for i in range(SAMPLE + 50)), reveal=True)
    assert report.sampled == SAMPLE


def test_it_leaves_out_fallbacks_ifs_and_other_names():
    refs = references(
        "{{ subscriber.first_name | default('friend') }}"
        "{% if subscriber.attributes.city %}in {{ subscriber.attributes.city }}{% endif %}"
        "{{ subscriber.name | upper }}{{ campaign.name }}{{ subscriber['attributes']['plan'] }}"
        "{{ subscriber.last_name | trim | default('x') }}"
    )
    assert [expr for expr, _ in refs] == ["subscriber.name", "subscriber.attributes.plan"]
    assert references("{{ broken") == []


def test_the_context_offers_first_and_last_name():
    context = rendering.recipient_context(
        workspace={},
        campaign={},
        subscriber={"name": "Ann Berg", "first_name": "Ann", "last_name": "Berg"},
        urls={},
    )
    assert (context["subscriber"]["first_name"], context["subscriber"]["last_name"]) == (
        "Ann",
        "Berg",
    )
    only_last = rendering.recipient_context(
        workspace={}, campaign={}, subscriber={"name": "Berg", "last_name": "Berg"}, urls={}
    )
    assert only_last["subscriber"]["first_name"] == ""
