"""The subscribers page (search, filters, keyset pages, bulk actions, adding by hand) and one
subscriber's page (profile, attributes, subscriptions, consent history, blocklist, delete,
erase, personal-data export): who may do what, masking, and one audit row per unmasked look."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import ConsentSource, Reason
from mailmarketer.audience.forms import format_attribute_value, parse_attribute_value
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription, Suppression


def url(name, ws="acme", **kwargs):
    return reverse(name, kwargs={"ws": ws, **kwargs})


def page_url(sub, name="audience-subscriber", ws="acme"):
    return url(name, ws=ws, sid=str(sub.uuid))


def looks():
    """Audit rows that record an unmasked look at people."""
    return AuditEvent.objects.filter(event__in=["subscriber.viewed", "subscriber.listed"])


@pytest.fixture
def zelda(personas, staff, news):
    sub = actions.do_create_subscriber(
        personas.acme,
        email="zelda.secret@example.com",
        name="Zelda Secretname",
        attributes={"city": "Trondheim", "age": 41},
        actor=staff,
    )
    notice = actions.notice_for_text(personas.acme, "Newsletter form", "Yes, send me the news.")
    source = ConsentSource("form", "7", "Newsletter form", "203.0.113.9", "ZeldaBrowser/9.1")
    actions.do_subscribe(
        sub, [news], actor=staff, reason=Reason.BY_SUBSCRIBER, source=source, notice=notice
    )
    return sub


@pytest.fixture
def crowd(personas, staff):
    """Five more people, oldest first."""
    return [
        actions.do_create_subscriber(
            personas.acme, email=f"person{i}@example.org", name=f"Person {i}", actor=staff
        )
        for i in range(5)
    ]


# -- the subscribers page ------------------------------------------------------------------------


def test_it_lists_subscribers_unmasked_and_audits_the_look_once(alice_client, zelda, crowd):
    response = alice_client.get(url("audience-subscribers"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "zelda.secret@example.com" in html and "Zelda Secretname" in html
    assert "News: confirmed" in html
    (look,) = looks()
    assert look.event == "subscriber.listed" and look.new == {"count": 6}
    assert look.workspace == zelda.workspace and look.actor_user.email == "alice@acme.test"


def test_it_masks_subscribers_for_an_analyst_and_audits_nothing(carol_client, zelda):
    response = carol_client.get(url("audience-subscribers"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "z•••@example.com" in html
    assert "zelda.secret" not in html and "Secretname" not in html
    assert not looks().exists()
    # No bulk actions or adding without audience.manage.
    assert 'name="ids"' not in html and "Add a subscriber" not in html


def test_it_does_not_let_an_analyst_search_by_address(carol_client, zelda, crowd):
    html = carol_client.get(url("audience-subscribers")).content.decode()
    assert "needs the permission to see personal data" in html
    assert re.search(r'name="q"[^>]*disabled', html)
    assert re.search(r'name="attr_value"[^>]*disabled', html)
    # Given anyway (a URL typed by hand), the search is refused out loud, and no row is shown
    # either way: otherwise it would tell, letter by letter, who is there.
    for guess in ["z", "ze", "zel", "zzz"]:
        response = carol_client.get(url("audience-subscribers"), {"q": guess})
        assert response.status_code == 403
        html = response.content.decode()
        assert "Filtering on personal data (Search) needs permission" in html
        assert "•••@example" not in html


def test_it_does_not_let_an_analyst_filter_on_an_attribute_value(carol_client, zelda):
    params = {"attr_name": "city", "attr_op": "eq", "attr_value": "Oslo"}
    response = carol_client.get(url("audience-subscribers"), params)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Filtering on personal data (Attribute, Value) needs permission" in html
    assert "z•••@example.com" not in html


def test_it_searches_by_address_or_name(alice_client, zelda, crowd):
    html = alice_client.get(url("audience-subscribers"), {"q": "SECRETNAME"}).content.decode()
    assert "zelda.secret@example.com" in html and "person1@example.org" not in html
    html = alice_client.get(url("audience-subscribers"), {"q": "person3@"}).content.decode()
    assert "person3@example.org" in html and "person2@example.org" not in html
    assert "zelda.secret" not in html


def test_it_filters_by_list_and_subscription_status(alice_client, staff, zelda, crowd, news):
    actions.do_subscribe(crowd[0], [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(crowd[0], actor=staff, reason=Reason.BY_ADMIN)
    params = {"list": news.pk, "subscription_status": "unsubscribed"}
    html = alice_client.get(url("audience-subscribers"), params).content.decode()
    assert "person0@example.org" in html and "zelda.secret" not in html
    html = alice_client.get(url("audience-subscribers"), {"list": news.pk}).content.decode()
    assert "person0@example.org" in html and "zelda.secret" in html
    assert "person1@example.org" not in html


def test_it_filters_by_subscriber_status(alice_client, staff, zelda, crowd):
    actions.do_blocklist_subscriber(crowd[2], actor=staff)
    html = alice_client.get(url("audience-subscribers"), {"status": "blocklisted"}).content.decode()
    assert "person2@example.org" in html and "person1@example.org" not in html


def test_it_filters_by_a_typed_attribute(alice_client, staff, zelda, crowd):
    actions.do_update_subscriber(crowd[1], attributes={"age": 30, "city": "Oslo"}, actor=staff)
    get = alice_client.get
    html = get(
        url("audience-subscribers"), {"attr_name": "age", "attr_op": "gt", "attr_value": "35"}
    )
    html = html.content.decode()
    assert "zelda.secret" in html and "person1@" not in html
    html = get(
        url("audience-subscribers"),
        {"attr_name": "city", "attr_op": "contains", "attr_value": "os"},
    ).content.decode()
    assert "person1@" in html and "zelda.secret" not in html
    html = get(
        url("audience-subscribers"), {"attr_name": "age", "attr_op": "eq", "attr_value": "30"}
    ).content.decode()
    assert "person1@" in html and "zelda.secret" not in html


def test_it_filters_on_attribute_names_that_are_also_query_words(alice_client, staff, crowd):
    actions.do_update_subscriber(crowd[1], attributes={"contains": "x", "0": "y"}, actor=staff)
    for name in ("contains", "isnull", "has_key"):
        actions.do_update_subscriber(crowd[2], attributes={name: "x"}, actor=staff)
        response = alice_client.get(
            url("audience-subscribers"), {"attr_name": name, "attr_op": "eq", "attr_value": "x"}
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert "person2@" in html and "person3@" not in html
    response = alice_client.get(
        url("audience-subscribers"), {"attr_name": "0", "attr_op": "eq", "attr_value": "y"}
    )
    assert response.status_code == 400
    assert "Attribute names made of digits only cannot be filtered on." in response.content.decode()


def test_it_matches_a_number_stored_as_text_by_an_import(alice_client, staff, crowd):
    actions.do_update_subscriber(crowd[3], attributes={"age": "30"}, actor=staff)
    actions.do_update_subscriber(crowd[4], attributes={"age": 30}, actor=staff)
    html = alice_client.get(
        url("audience-subscribers"), {"attr_name": "age", "attr_op": "eq", "attr_value": "30"}
    ).content.decode()
    assert "person3@" in html and "person4@" in html and "person2@" not in html


def test_it_filters_by_the_day_added_in_the_workspace_time_zone(alice_client, personas, crowd):
    personas.acme.timezone = "Europe/Oslo"
    personas.acme.save()
    # Today in the workspace's zone (from 23:00 UTC Oslo is a day ahead of UTC).
    day = now().astimezone(ZoneInfo("Europe/Oslo")).date()
    Subscriber.objects.filter(pk=crowd[0].pk).update(created_at=now() - timedelta(days=10))
    params = {"created_from": day.isoformat(), "created_to": day.isoformat()}
    html = alice_client.get(url("audience-subscribers"), params).content.decode()
    assert "person1@example.org" in html and "person0@example.org" not in html
    old = (day - timedelta(days=10)).isoformat()
    html = alice_client.get(
        url("audience-subscribers"), {"created_from": old, "created_to": old}
    ).content.decode()
    assert "person0@example.org" in html and "person1@example.org" not in html


def test_it_explains_bad_filters(alice_client, zelda, news):
    response = alice_client.get(
        url("audience-subscribers"),
        {
            "subscription_status": "confirmed",
            "created_from": "2024-05-02",
            "created_to": "2024-05-01",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Choose the list this status is about." in html
    assert "The “Added until” date is before the “Added from” date." in html
    assert "zelda.secret" not in html
    assert not looks().exists()
    response = alice_client.get(url("audience-subscribers"), {"attr_value": "x"})
    assert response.status_code == 400
    assert "Name the attribute to compare the value with." in response.content.decode()
    response = alice_client.get(url("audience-subscribers"), {"list": "999999"})
    assert response.status_code == 400


def test_it_pages_with_a_cursor_and_no_total_count(alice_client, personas, staff, monkeypatch):
    from mailmarketer.audience import views_subscribers

    monkeypatch.setattr(views_subscribers, "PAGE_SIZE", 2)
    for i in range(5):
        actions.do_create_subscriber(personas.acme, email=f"p{i}@example.net", actor=staff)
    seen, next_url, pages = [], url("audience-subscribers") + "?q=example.net", 0
    while next_url:
        response = alice_client.get(next_url)
        assert response.status_code == 200
        html = response.content.decode()
        seen += re.findall(r"p(\d)@example\.net</a>", html)
        found = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', html)
        next_url = (
            (url("audience-subscribers") + found.group(1).replace("&amp;", "&")) if found else None
        )
        pages += 1
        assert " shown" in html and "of 5" not in html
    assert seen == ["4", "3", "2", "1", "0"]
    assert pages == 3
    assert looks().count() == 3  # one per page shown


def test_it_refuses_a_broken_page_link(alice_client, zelda):
    response = alice_client.get(url("audience-subscribers"), {"before": "abc"})
    assert response.status_code == 400
    assert "the page link is broken" in response.content.decode().lower()


def test_it_hides_the_subscribers_page_from_another_workspace(mallory_client, zelda):
    assert mallory_client.get(url("audience-subscribers")).status_code == 404
    html = mallory_client.get(url("audience-subscribers", ws="evil")).content.decode()
    assert "zelda" not in html and "z•••" not in html


# -- adding one person ---------------------------------------------------------------------------


def test_it_adds_a_subscriber_with_lists(bob_client, personas, news, webinars):
    response = bob_client.post(
        url("audience-subscriber-create"),
        {
            "add-email": " New.Person@Example.COM ",
            "add-name": "New",
            "add-lists": [news.pk, webinars.pk],
        },
    )
    sub = Subscriber.objects.get(workspace=personas.acme, email="New.Person@example.com")
    assert response.status_code == 302 and response["Location"] == page_url(sub)
    statuses = dict(
        Subscription.objects.filter(subscriber=sub).values_list("mailing_list__slug", "status")
    )
    assert statuses == {"news": "confirmed", "webinars": "unconfirmed"}


def test_it_refuses_an_invalid_address_with_the_reason(bob_client, personas):
    response = bob_client.post(url("audience-subscriber-create"), {"add-email": "no-at-sign"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "invalid email address" in html
    assert re.search(r'name="add-email"[^>]*aria-invalid="true"', html)
    assert not Subscriber.objects.exists()


def test_it_refuses_a_duplicate(bob_client, zelda):
    response = bob_client.post(
        url("audience-subscriber-create"), {"add-email": "zelda.secret@EXAMPLE.com"}
    )
    assert response.status_code == 409
    assert "already exists" in response.content.decode()


def test_it_forbids_an_analyst_to_add(carol_client, personas):
    response = carol_client.post(url("audience-subscriber-create"), {"add-email": "a@example.com"})
    assert response.status_code == 403
    assert not Subscriber.objects.exists()


def test_it_does_not_let_mallory_add_to_acme_or_use_its_lists(mallory_client, personas, news):
    data = {"add-email": "a@example.com", "add-lists": [news.pk]}
    assert mallory_client.post(url("audience-subscriber-create"), data).status_code == 404
    response = mallory_client.post(url("audience-subscriber-create", ws="evil"), data)
    assert response.status_code == 400  # not a list of hers
    assert not Subscriber.objects.exists()


# -- bulk actions --------------------------------------------------------------------------------


def bulk(client, people, action, ws="acme", **extra):
    return client.post(
        url("audience-subscribers-bulk", ws=ws),
        {"ids": [str(p.uuid) for p in people], "action": action, **extra},
    )


def test_it_adds_the_selected_to_a_list(bob_client, staff, crowd, news):
    actions.do_subscribe(crowd[0], [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_blocklist_subscriber(crowd[1], actor=staff)
    response = bob_client.post(
        url("audience-subscribers-bulk"),
        {
            "ids": [str(p.uuid) for p in crowd[:4]],
            "action": "add_to_list",
            "list": news.pk,
            "filters": "q=person&before=99",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == url("audience-subscribers") + "?q=person&before=99"
    on_news = set(
        Subscription.objects.filter(mailing_list=news, status="confirmed").values_list(
            "subscriber_id", flat=True
        )
    )
    assert on_news == {crowd[0].pk, crowd[2].pk, crowd[3].pk}
    message = bob_client.get(url("audience-subscribers")).content.decode()
    assert "done for 2" in message
    assert "1 already on the list" in message and "1 blocklisted" in message


def test_it_unsubscribes_the_selected_from_one_list(bob_client, staff, crowd, news, webinars):
    for p in crowd[:2]:
        actions.do_subscribe(
            p, [news, webinars], actor=staff, reason=Reason.BY_ADMIN, confirmed=True
        )
    response = bob_client.post(
        url("audience-subscribers-bulk"),
        {"ids": [str(crowd[0].uuid)], "action": "remove_from_list", "list": news.pk},
    )
    assert response.status_code == 302
    row = Subscription.objects.get(subscriber=crowd[0], mailing_list=news)
    assert (row.status, row.status_reason) == ("unsubscribed", "by_admin")
    assert (
        Subscription.objects.get(subscriber=crowd[0], mailing_list=webinars).status == "confirmed"
    )
    assert Subscription.objects.get(subscriber=crowd[1], mailing_list=news).status == "confirmed"


def test_it_needs_a_list_for_list_actions(bob_client, crowd):
    response = bob_client.post(
        url("audience-subscribers-bulk"), {"ids": [str(crowd[0].uuid)], "action": "add_to_list"}
    )
    assert response.status_code == 400
    assert "Choose the list for this action." in response.content.decode()


def test_it_unsubscribes_the_selected_from_all_lists(bob_client, staff, crowd, news, webinars):
    actions.do_subscribe(
        crowd[0], [news, webinars], actor=staff, reason=Reason.BY_ADMIN, confirmed=True
    )
    assert bulk(bob_client, crowd[:1], "unsubscribe_all").status_code == 302
    assert set(
        Subscription.objects.filter(subscriber=crowd[0]).values_list("status", flat=True)
    ) == {"unsubscribed"}
    # Staff unsubscribing is not the person's own request: the address is not suppressed.
    assert not Suppression.objects.exists()


def test_it_blocklists_the_selected(bob_client, crowd):
    assert bulk(bob_client, crowd[:2], "blocklist").status_code == 302
    statuses = dict(Subscriber.objects.values_list("email", "status"))
    assert statuses["person0@example.org"] == statuses["person1@example.org"] == "blocklisted"
    assert statuses["person2@example.org"] == "enabled"
    assert AuditEvent.objects.filter(event="subscriber.blocklisted").count() == 2


def test_it_asks_before_deleting_the_selected(bob_client, crowd):
    response = bulk(bob_client, crowd[:3], "delete", filters="q=person")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Delete 3 subscribers?" in html
    assert "p•••@example.org" in html and "person0@" not in html
    assert html.count('name="ids"') == 3 and 'name="confirm" value="yes"' in html
    assert Subscriber.objects.count() == 5
    response = bulk(bob_client, crowd[:3], "delete", confirm="yes")
    assert response.status_code == 302
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "person3@example.org",
        "person4@example.org",
    }
    assert AuditEvent.objects.filter(event="subscriber.deleted").count() == 3


def test_it_refuses_an_empty_or_malformed_selection(bob_client, crowd):
    response = bob_client.post(url("audience-subscribers-bulk"), {"action": "blocklist"})
    assert response.status_code == 400
    assert "Select at least one subscriber" in response.content.decode()
    response = bob_client.post(
        url("audience-subscribers-bulk"), {"ids": ["not-a-uuid"], "action": "blocklist"}
    )
    assert response.status_code == 400
    assert "is not a subscriber id" in response.content.decode()
    assert not Subscriber.objects.filter(status="blocklisted").exists()


def test_it_forbids_an_analyst_bulk_actions(carol_client, crowd):
    assert bulk(carol_client, crowd, "blocklist").status_code == 403
    assert not Subscriber.objects.filter(status="blocklisted").exists()


def test_it_does_not_let_mallory_act_on_acme_subscribers(mallory_client, personas, crowd):
    assert bulk(mallory_client, crowd, "blocklist").status_code == 404
    # acme's uuids in her own workspace's URL are not found there either.
    assert bulk(mallory_client, crowd, "blocklist", ws="evil").status_code == 404
    assert bulk(mallory_client, crowd, "delete", ws="evil", confirm="yes").status_code == 404
    assert Subscriber.objects.filter(workspace=personas.acme, status="enabled").count() == 5


# -- one subscriber's page -----------------------------------------------------------------------


def test_it_shows_everything_to_a_marketer_and_audits_one_look(bob_client, zelda, news):
    response = bob_client.get(page_url(zelda))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "zelda.secret@example.com",
        "Zelda Secretname",
        "Trondheim",
        "Newsletter form v1",
        "Yes, send me the news.",
        "203.0.113.9",
        "ZeldaBrowser/9.1",
        "By the subscriber",
    ):
        assert text in html, text
    (look,) = looks()
    assert look.event == "subscriber.viewed"
    assert look.object_id == str(zelda.pk) and look.object_repr == f"subscriber {zelda.uuid}"
    assert "zelda" not in f"{look.old} {look.new} {look.object_repr}"


def test_it_masks_a_subscriber_for_an_analyst(carol_client, zelda):
    response = carol_client.get(page_url(zelda))
    assert response.status_code == 200
    html = response.content.decode()
    for secret in ("zelda.secret", "Secretname", "Trondheim", "203.0.113.9", "ZeldaBrowser"):
        assert secret not in html, secret
    assert "z•••@example.com" in html
    assert "city" in html  # the attribute's name, not its value
    assert "Yes, send me the news." in html  # the notice is not personal data
    assert not looks().exists()
    assert 'action="' + page_url(zelda, "audience-subscriber-attributes") not in html
    assert "Export personal data" not in html and "Erase" not in html


def test_it_never_shows_an_analyst_the_address_on_any_audience_page(
    carol_client, staff, zelda, news
):
    actions.do_unsubscribe(
        zelda,
        [news],
        actor=staff,
        reason=Reason.BY_SUBSCRIBER,
        source=ConsentSource("subscriber", "", "zelda.secret@example.com via link"),
    )
    pages = [
        url("audience-home"),
        url("audience-subscribers"),
        url("audience-subscribers") + f"?list={news.pk}",
        url("audience-subscribers") + "?q=zelda",
        page_url(zelda),
        url("audience-suppression"),
    ]
    for target in pages:
        response = carol_client.get(target)
        assert response.status_code == (403 if "?q=" in target else 200), target
        html = response.content.decode()
        for secret in ("zelda.secret", "Secretname", "Trondheim", "203.0.113.9", "ZeldaBrowser"):
            assert secret not in html, (target, secret)
    assert not looks().exists()


def test_it_shows_a_masked_page_for_an_unknown_or_malformed_id_as_404(alice_client, zelda):
    assert alice_client.get(url("audience-subscriber", sid="nonsense")).status_code == 404
    assert alice_client.get(url("audience-subscriber", sid=str(zelda.pk))).status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert alice_client.get(url("audience-subscriber", sid=missing)).status_code == 404
    assert not looks().exists()


SUBSCRIBER_ROUTES = [
    ("audience-subscriber", "get"),
    ("audience-subscriber-profile", "post"),
    ("audience-subscriber-attributes", "post"),
    ("audience-subscriber-subscribe", "post"),
    ("audience-subscriber-unsubscribe", "post"),
    ("audience-subscriber-blocklist", "post"),
    ("audience-subscriber-unblock", "post"),
    ("audience-subscriber-delete", "get"),
    ("audience-subscriber-delete", "post"),
    ("audience-subscriber-erase", "get"),
    ("audience-subscriber-erase", "post"),
    ("audience-subscriber-export", "post"),
]


@pytest.mark.parametrize(("name", "method"), SUBSCRIBER_ROUTES)
def test_it_hides_acme_subscribers_from_mallory(mallory_client, zelda, news, name, method):
    data = {"list": news.pk, "profile-email": "x@example.com"} if method == "post" else None
    for ws in ("acme", "evil"):
        response = getattr(mallory_client, method)(page_url(zelda, name, ws=ws), data)
        assert response.status_code == 404, (ws, response.status_code)
    zelda.refresh_from_db()
    assert zelda.status == "enabled" and zelda.email == "zelda.secret@example.com"
    assert not looks().exists()


MANAGE_ROUTES = [
    ("audience-subscriber-profile", "post"),
    ("audience-subscriber-attributes", "post"),
    ("audience-subscriber-subscribe", "post"),
    ("audience-subscriber-unsubscribe", "post"),
    ("audience-subscriber-blocklist", "post"),
    ("audience-subscriber-unblock", "post"),
    ("audience-subscriber-delete", "get"),
    ("audience-subscriber-delete", "post"),
    ("audience-subscriber-erase", "get"),
    ("audience-subscriber-erase", "post"),
    ("audience-subscriber-export", "post"),
]


@pytest.mark.parametrize(("name", "method"), MANAGE_ROUTES)
def test_it_forbids_an_analyst_to_change_a_subscriber(carol_client, zelda, news, name, method):
    data = {"list": news.pk, "profile-email": "x@example.com"} if method == "post" else None
    response = getattr(carol_client, method)(page_url(zelda, name), data)
    assert response.status_code == 403
    zelda.refresh_from_db()
    assert zelda.status == "enabled" and zelda.email == "zelda.secret@example.com"
    assert (
        not AuditEvent.objects.filter(event__startswith="subscriber.", object_id=str(zelda.pk))
        .exclude(event__in=["subscriber.created", "subscriber.subscribed"])
        .exists()
    )


def test_it_changes_the_profile(bob_client, zelda):
    response = bob_client.post(
        page_url(zelda, "audience-subscriber-profile"),
        {"profile-email": "zelda.new@EXAMPLE.com", "profile-name": "Zelda N"},
    )
    assert response.status_code == 302
    zelda.refresh_from_db()
    assert (zelda.email, zelda.name) == ("zelda.new@example.com", "Zelda N")


def test_it_refuses_a_profile_address_that_is_suppressed(bob_client, personas, staff, zelda):
    actions.do_add_suppression(personas.acme, email="gone@example.com", actor=staff)
    response = bob_client.post(
        page_url(zelda, "audience-subscriber-profile"), {"profile-email": "gone@example.com"}
    )
    assert response.status_code == 409
    assert "on the suppression list" in response.content.decode()
    zelda.refresh_from_db()
    assert zelda.email == "zelda.secret@example.com"


# -- attributes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("42", 42),
        ("-3.5", -3.5),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("007", "007"),
        ("+4712345678", "+4712345678"),
        ('"42"', "42"),
        ('"true"', "true"),
        ("True", "True"),
        ("  Oslo  ", "Oslo"),
        ("", ""),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("[draft]", "[draft]"),
        ("1e999", "1e999"),
        ("12abc", "12abc"),
    ],
)
def test_it_types_attribute_values_by_the_documented_rule(typed, stored):
    value = parse_attribute_value(typed)
    assert value == stored and type(value) is type(stored)
    # What the editor shows for a stored value types back into the same value.
    assert parse_attribute_value(format_attribute_value(value)) == value
    assert type(parse_attribute_value(format_attribute_value(value))) is type(value)


def test_it_shows_stored_text_that_looks_like_a_number_in_quotes():
    assert format_attribute_value("42") == '"42"'
    assert format_attribute_value("Oslo") == "Oslo"
    assert format_attribute_value(42) == "42"
    assert format_attribute_value(True) == "true"


def attribute_post(rows, initial_count):
    data = {
        "attr-TOTAL_FORMS": str(len(rows)),
        "attr-INITIAL_FORMS": str(initial_count),
        "attr-MIN_NUM_FORMS": "0",
        "attr-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        key, value, *delete = row
        data[f"attr-{i}-key"] = key
        data[f"attr-{i}-value"] = value
        if delete:
            data[f"attr-{i}-DELETE"] = "on"
    return data


def test_it_edits_adds_and_removes_attributes_with_types(bob_client, zelda):
    page = bob_client.get(page_url(zelda)).content.decode()
    assert 'name="attr-0-key" value="age"' in page and 'name="attr-0-value" value="41"' in page
    assert "Values are typed" in page
    data = attribute_post(
        [
            ("age", "42"),
            ("city", "Trondheim", "remove"),
            ("vip", "true"),
            ("zip", "0150"),
            ("code", '"123"'),
            ("", ""),
        ],
        initial_count=2,
    )
    response = bob_client.post(page_url(zelda, "audience-subscriber-attributes"), data)
    assert response.status_code == 302
    zelda.refresh_from_db()
    assert zelda.attributes == {"age": 42, "vip": True, "zip": "0150", "code": "123"}
    event = AuditEvent.objects.get(event="subscriber.updated", object_id=str(zelda.pk))
    assert event.new == {"fields": ["attributes"]}  # names of fields only, no values


def test_it_refuses_a_duplicate_attribute_name_or_a_value_without_a_name(bob_client, zelda):
    data = attribute_post([("age", "1"), ("age", "2"), ("", "orphan")], initial_count=0)
    response = bob_client.post(page_url(zelda, "audience-subscriber-attributes"), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "The attribute “age” appears twice; keep one." in html
    assert "Give this value a name, or clear the value." in html
    zelda.refresh_from_db()
    assert zelda.attributes == {"city": "Trondheim", "age": 41}


# -- subscriptions, blocklist, delete, erase, export ---------------------------------------------


def test_it_subscribes_and_unsubscribes_one_list(bob_client, zelda, news, webinars):
    response = bob_client.post(
        page_url(zelda, "audience-subscriber-unsubscribe"), {"list": news.pk}
    )
    assert response.status_code == 302
    row = Subscription.objects.get(subscriber=zelda, mailing_list=news)
    assert (row.status, row.status_reason) == ("unsubscribed", "by_admin")
    # Staff may renew an unsubscribed membership from the person's page.
    assert (
        bob_client.post(
            page_url(zelda, "audience-subscriber-subscribe"), {"list": news.pk}
        ).status_code
        == 302
    )
    row.refresh_from_db()
    assert (row.status, row.status_reason) == ("confirmed", "by_admin")
    bob_client.post(page_url(zelda, "audience-subscriber-subscribe"), {"list": webinars.pk})
    assert Subscription.objects.get(subscriber=zelda, mailing_list=webinars).status == "unconfirmed"
    assert ConsentRecord.objects.filter(subscriber=zelda, action="withdraw").count() == 1


def test_it_refuses_subscribing_a_blocklisted_person(bob_client, staff, zelda, webinars):
    actions.do_blocklist_subscriber(zelda, actor=staff)
    response = bob_client.post(
        page_url(zelda, "audience-subscriber-subscribe"), {"list": webinars.pk}
    )
    assert response.status_code == 409
    assert "blocklisted and cannot be subscribed" in response.content.decode()
    assert not Subscription.objects.filter(subscriber=zelda, mailing_list=webinars).exists()


def test_it_does_not_subscribe_to_another_workspaces_list(alice_client, personas, staff, zelda):
    theirs = actions.do_create_list(personas.evil, name="Theirs", slug="theirs", actor=staff)
    response = alice_client.post(
        page_url(zelda, "audience-subscriber-subscribe"), {"list": theirs.pk}
    )
    assert response.status_code == 404
    assert not Subscription.objects.filter(mailing_list=theirs).exists()


def test_it_blocklists_and_unblocks(bob_client, zelda):
    assert bob_client.post(page_url(zelda, "audience-subscriber-blocklist")).status_code == 302
    zelda.refresh_from_db()
    assert zelda.status == "blocklisted"
    assert Subscription.objects.get(subscriber=zelda).status == "unsubscribed"
    assert bob_client.post(page_url(zelda, "audience-subscriber-unblock")).status_code == 302
    zelda.refresh_from_db()
    assert zelda.status == "enabled"


def test_it_deletes_after_confirming(bob_client, zelda):
    page = bob_client.get(page_url(zelda, "audience-subscriber-delete"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "z•••@example.com" in html and "zelda.secret" not in html
    assert Subscriber.objects.filter(pk=zelda.pk).exists()
    assert not looks().exists()  # a masked confirmation page is not a look
    response = bob_client.post(page_url(zelda, "audience-subscriber-delete"))
    assert response.status_code == 302 and response["Location"] == url("audience-subscribers")
    assert not Subscriber.objects.filter(pk=zelda.pk).exists()
    assert not Suppression.objects.exists()  # deleting is not erasing


def test_it_erases_keeping_the_suppression_so_the_add_form_refuses_them(bob_client, zelda):
    page = bob_client.get(page_url(zelda, "audience-subscriber-erase")).content.decode()
    assert "What stays" in page and "hash of the address on the suppression list" in page
    assert bob_client.post(page_url(zelda, "audience-subscriber-erase")).status_code == 302
    assert not Subscriber.objects.filter(pk=zelda.pk).exists()
    assert not ConsentRecord.objects.exists()
    assert Suppression.objects.get().reason == "erased"
    response = bob_client.post(
        url("audience-subscriber-create"), {"add-email": "zelda.secret@example.com"}
    )
    assert response.status_code == 409
    assert (
        "this address is on the suppression list (erased at the person&#x27;s request) and "
        "cannot be added or subscribed" in response.content.decode()
    )
    assert not Subscriber.objects.exists()


def test_it_downloads_the_personal_data_export_and_audits_it(bob_client, zelda):
    response = bob_client.post(page_url(zelda, "audience-subscriber-export"))
    assert response.status_code == 200
    assert (
        response["Content-Disposition"] == f'attachment; filename="personal-data-{zelda.uuid}.json"'
    )
    assert response["Cache-Control"] == "no-store"
    document = json.loads(response.content)
    assert document["profile"]["email"] == "zelda.secret@example.com"
    assert document["consent"][0]["notice__text"] == "Yes, send me the news."
    assert (
        AuditEvent.objects.filter(event="subscriber.exported", object_id=str(zelda.pk)).count() == 1
    )


def test_it_does_not_export_personal_data_by_get(bob_client, zelda):
    assert bob_client.get(page_url(zelda, "audience-subscriber-export")).status_code == 405
    assert not AuditEvent.objects.filter(event="subscriber.exported").exists()


def test_it_refuses_a_profile_name_with_a_line_break(bob_client, zelda):
    response = bob_client.post(
        page_url(zelda, "audience-subscriber-profile"),
        {"profile-email": zelda.email, "profile-name": "Zelda\r\nBcc: v@evil.example"},
    )
    assert response.status_code == 400
    assert "must be one line without control characters" in response.content.decode()
    zelda.refresh_from_db()
    assert zelda.name == "Zelda Secretname"
