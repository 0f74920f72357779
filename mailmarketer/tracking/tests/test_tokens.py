"""Click and open tokens: made per recipient and link, read back, and worthless once altered in
any byte (the redirect then goes nowhere, never anywhere but the stored URL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils.timezone import now
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.audience.links import (
    click_token,
    open_token,
    read_click_token,
    read_open_token,
)
from mailmarketer.campaigns.models import CampaignLink
from mailmarketer.delivery.models import Delivery
from mailmarketer.tracking.testing import send_campaign


def test_it_reads_back_what_it_made():
    assert read_click_token(click_token(12, 345)) == (12, 345)
    assert read_open_token(open_token(12)) == 12


def test_it_refuses_tokens_of_the_other_kind_and_garbage():
    assert read_click_token(open_token(12)) is None
    assert read_open_token(click_token(12, 3)) is None
    for garbage in [
        "",
        ".",
        "1.2.",
        "a.b.c",
        "１.２." + click_token(1, 2).split(".")[2],
        "x" * 5000,
    ]:
        assert read_click_token(garbage) is None


def test_it_accepts_tokens_signed_with_a_previous_key(settings):
    token = click_token(7, 8)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key-" + "k" * 50
    assert read_click_token(token) == (7, 8)
    settings.SECRET_KEY_FALLBACKS = []
    assert read_click_token(token) is None


@given(position=st.integers(min_value=0, max_value=200), byte=st.integers(0, 255))
@settings(max_examples=300, deadline=None)
def test_it_refuses_any_single_byte_change(position, byte):
    token = click_token(123, 45)
    position %= len(token) + 1
    altered = token[:position] + chr(byte) + token[position + 1 :]
    assert altered == token or read_click_token(altered) in (None, (123, 45))


@pytest.fixture
def sent(ws, news, people):
    campaign = send_campaign(ws, [news])
    Delivery.objects.filter(campaign=campaign).update(sent_at=now() - timedelta(minutes=5))
    return campaign


@pytest.mark.django_db
@given(data=st.data())
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_it_redirects_an_altered_token_to_the_stored_url_or_nowhere(sent, data):
    stored = set(CampaignLink.objects.filter(campaign=sent).values_list("url", flat=True))
    row = Delivery.objects.filter(campaign=sent).first()
    link = CampaignLink.objects.filter(campaign=sent).first()
    token = click_token(row.pk, link.pk)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii", exclude_characters="/?#%"))
    altered = token[:position] + replacement + token[position + 1 :]
    response = Client().get(f"/t/c/{altered}")
    if response.status_code == 302:
        assert response["Location"] in stored
        assert altered == token
    else:
        assert response.status_code == 404 and "Location" not in response


def test_tracking_tokens_are_click_token_and_open_token(settings):
    # The send path makes a message's click and open tokens in one call.
    from mailmarketer.audience.links import click_token, open_token, tracking_tokens

    for delivery_id, link_ids in ((1, []), (7, [3]), (10**15, [1, 22, 333])):
        for pixel in (True, False):
            expected = [click_token(delivery_id, link) for link in link_ids]
            expected += [open_token(delivery_id)] if pixel else []
            assert tracking_tokens(delivery_id, link_ids, pixel) == expected
    settings.SECRET_KEY = "another-secret-key-" + "r" * 40
    assert tracking_tokens(5, [2], True) == [click_token(5, 2), open_token(5)]
