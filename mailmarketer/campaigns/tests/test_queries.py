"""Campaign reads: workspace-scoped lookups and previews."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.campaigns import actions, queries


@pytest.fixture
def campaign(personas):
    return actions.do_create_campaign(
        personas.acme,
        actor=Actor.for_user(personas.bob),
        name="Preview me",
        subject="For {{ subscriber.first_name | default('you', true) }}",
        body="Plan: **{{ subscriber.attributes.plan | default('none') }}**",
    )


def test_it_finds_a_campaign_by_id_or_uuid_only_in_its_workspace(campaign, personas):
    assert queries.get_campaign(personas.acme, campaign.pk) == campaign
    assert queries.get_campaign(personas.acme, str(campaign.uuid)) == campaign
    assert queries.get_campaign(personas.evil, campaign.pk) is None
    assert queries.get_campaign(personas.evil, str(campaign.uuid)) is None
    assert queries.get_campaign(personas.acme, "not-a-uuid") is None
    assert list(queries.campaigns_for(personas.evil)) == []


def test_it_previews_with_sample_data(campaign):
    message = queries.preview_campaign(campaign)
    assert message.subject == "For Jane"
    assert "Plan: <strong>none</strong>" in message.html
    assert "/f/u/preview" in message.html  # an inert unsubscribe link


def test_it_previews_as_a_chosen_subscriber(campaign, personas):
    person = audience.do_create_subscriber(
        personas.acme,
        email="ann@example.com",
        name="Ann Lee",
        attributes={"plan": "<b>pro</b>"},
        actor=Actor.for_user(personas.bob),
    )
    message = queries.preview_campaign(campaign, person)
    assert message.subject == "For Ann"
    assert "Plan: <strong>&lt;b&gt;pro&lt;/b&gt;</strong>" in message.html


def test_it_refuses_to_preview_as_someone_of_another_workspace(campaign, personas):
    outsider = audience.do_create_subscriber(
        personas.evil, email="x@example.com", actor=Actor.for_user(personas.mallory)
    )
    with pytest.raises(ValueError, match="another workspace"):
        queries.preview_campaign(campaign, outsider)
