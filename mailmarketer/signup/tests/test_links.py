from unittest import mock

from django.test import Client

from mailmarketer.audience import links
from mailmarketer.audience.links import unsubscribe_url
from mailmarketer.audience.models import Subscription
from mailmarketer.audience.tokens import read_unsubscribe_token


def test_it_makes_an_absolute_url_that_reads_back(settings):
    settings.BASE_URL = "https://mail.example.org"
    url = unsubscribe_url(3, 42, 7)
    prefix = "https://mail.example.org/f/u/"
    assert url.startswith(prefix)
    request = read_unsubscribe_token(url.removeprefix(prefix))
    assert (request.workspace_id, request.subscriber_id, request.campaign_id) == (3, 42, 7)
    without_campaign = unsubscribe_url(3, 42, None).removeprefix(prefix)
    assert read_unsubscribe_token(without_campaign).campaign_id is None


def test_it_resolves_the_route_once_not_per_recipient():
    unsubscribe_url(1, 1, 1)
    with mock.patch.object(links, "reverse", side_effect=AssertionError("reverse() per call")):
        for subscriber_id in range(100):
            unsubscribe_url(1, subscriber_id, 1)


def test_it_makes_a_url_the_unsubscribe_route_accepts(settings, ann, campaign):
    url = unsubscribe_url(ann.workspace_id, ann.pk, campaign.pk)
    path = url.removeprefix(settings.BASE_URL)
    response = Client(enforce_csrf_checks=True).post(
        path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert Subscription.objects.get(subscriber=ann, mailing_list__slug="news").status == (
        "unsubscribed"
    )


def test_it_keeps_links_working_after_the_secret_key_changes(settings):
    from mailmarketer.audience.tokens import make_unsubscribe_token, read_unsubscribe_token

    token = make_unsubscribe_token(1, 2, 3)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "y" * 40
    assert read_unsubscribe_token(token).subscriber_id == 2
    settings.SECRET_KEY_FALLBACKS = []
    assert read_unsubscribe_token(token) is None


def test_message_urls_are_the_three_links_made_one_by_one(settings):
    # The send path makes a message's unsubscribe, manage and view links together.
    from mailmarketer.audience.links import manage_url, message_urls, view_url

    for base in ("https://mail.example.org", "http://localhost:8000/mm"):
        settings.BASE_URL = base
        for ids in ((3, 42, 7), (1, 10**12, 99), (5, 6, 0)):
            workspace, subscriber, campaign = ids
            assert message_urls(*ids) == (
                unsubscribe_url(workspace, subscriber, campaign),
                manage_url(workspace, subscriber),
                view_url(workspace, subscriber, campaign),
            )
    settings.SECRET_KEY = "another-secret-key-" + "q" * 40
    assert message_urls(3, 42, 7)[0] == unsubscribe_url(3, 42, 7)
