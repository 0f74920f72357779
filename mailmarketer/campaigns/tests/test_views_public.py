import pytest

from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.links import VIEW_SALT, view_url
from mailmarketer.campaigns.models import Campaign
from mailmarketer.lib.idtokens import make_token


@pytest.fixture
def sent(personas):
    from mailmarketer.accounts.actors import Actor

    staff = Actor.for_user(personas.alice)
    news = audience.do_create_list(personas.acme, name="News", slug="news", actor=staff)
    ann = audience.do_create_subscriber(
        personas.acme, email="ann@example.com", name="Ann Lee", actor=staff
    )
    audience.do_subscribe(ann, [news], actor=staff, reason=Reason.BY_ADMIN)
    campaign = Campaign.objects.create(
        workspace=personas.acme,
        name="Autumn",
        subject="Hi {{ subscriber.first_name }}",
        body="Hello {{ subscriber.first_name | default('friend') }}! <script>x()</script>",
        status="finished",
        archive=True,
    )
    campaign.lists.set([news])
    return campaign, ann


def path_of(url):
    return url.split("testserver", 1)[1]


def test_it_shows_the_message_as_the_person_received_it(client, sent):
    campaign, ann = sent
    response = client.get(path_of(view_url(campaign.workspace_id, ann.pk, campaign.pk)))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Hello Ann!" in body and "<script>x()</script>" not in body
    assert "/f/u/" in body  # a working unsubscribe link for that person
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["Referrer-Policy"] == "no-referrer"


def test_it_refuses_altered_or_foreign_links(client, sent, personas):
    campaign, ann = sent
    url = path_of(view_url(campaign.workspace_id, ann.pk, campaign.pk))
    assert client.get(url[:-3] + "abc").status_code == 404
    other = make_token(VIEW_SALT, personas.evil.pk, ann.pk, campaign.pk)
    assert client.get(f"/f/view/{other}").status_code == 404
    forged = make_token("other", campaign.workspace_id, ann.pk, campaign.pk)
    assert client.get(f"/f/view/{forged}").status_code == 404


def test_it_shows_archived_campaigns_without_anyones_data(client, sent):
    campaign, _ = sent
    response = client.get(f"/f/archive/{campaign.uuid}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Hello friend!" in body and "Ann" not in body and "/f/u/" not in body


def test_it_hides_drafts_and_campaigns_not_marked_for_the_archive(client, sent):
    campaign, _ = sent
    Campaign.objects.filter(pk=campaign.pk).update(archive=False)
    assert client.get(f"/f/archive/{campaign.uuid}/").status_code == 404
    Campaign.objects.filter(pk=campaign.pk).update(archive=True, status="draft")
    assert client.get(f"/f/archive/{campaign.uuid}/").status_code == 404


def test_it_answers_the_unavailable_page_when_the_message_cannot_be_rendered(client, sent):
    # The template passed its checks with sample data; this person's number would grow past
    # the cap (issue 9, F1): the page a missing message gets, not a 500.
    campaign, ann = sent
    Campaign.objects.filter(pk=campaign.pk).update(
        body="{{ subscriber.attributes.n * subscriber.attributes.n }}"
    )
    ann.attributes = {"n": 10**999}
    ann.save(update_fields=["attributes"])
    response = client.get(path_of(view_url(campaign.workspace_id, ann.pk, campaign.pk)))
    assert response.status_code == 404
    assert "This message is not available" in response.content.decode()
