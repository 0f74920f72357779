"""One person per address, whatever its case (emails.email_key): every path that adds, finds,
subscribes, suppresses or erases someone treats `ANNA.SCHMIDT@beispiel.de` and
`anna.schmidt@Beispiel.DE` as one person, kept as first typed."""

from __future__ import annotations

import pytest

from mailmarketer.audience import actions, queries
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import Subscriber, Subscription, Suppression

from .import_helpers import import_data_dir, report, run, write  # noqa: F401 - autouse fixture

SHOUT = "ANNA.SCHMIDT@beispiel.de"
QUIET = "anna.schmidt@Beispiel.DE"


def test_it_imports_two_spellings_in_one_file_as_one_subscriber(personas, news, tmp_path):
    path = write(tmp_path, "people.csv", f"email,name\n{SHOUT},Anna\n{QUIET},Anna S\n")

    imp = run(personas.acme, path)

    (anna,) = Subscriber.objects.filter(workspace=personas.acme)
    assert (anna.email, anna.email_key, anna.name) == (SHOUT, "anna.schmidt@beispiel.de", "Anna")
    assert report(imp) == [["3", "duplicate in file (of line 2)", QUIET, "Anna S"]]
    assert (imp.rows_created, imp.rows_skipped) == (1, 1)
    assert Subscription.objects.get(subscriber=anna).mailing_list == news


def test_it_finds_the_stored_person_under_another_spelling(
    personas, staff, news, webinars, tmp_path
):
    anna = actions.do_create_subscriber(personas.acme, email=SHOUT, actor=staff)
    actions.do_subscribe(anna, [news], actor=staff, reason=Reason.BY_ADMIN)
    subscribed = write(tmp_path, "subscribe.csv", f"email\n{QUIET}\n")
    updated = write(tmp_path, "update.csv", f"email,city\n{QUIET},Köln\n")

    imp = run(personas.acme, subscribed, lists=["news", "webinars"])
    run(personas.acme, updated, mode="update")

    assert Subscriber.objects.filter(workspace=personas.acme).count() == 1
    assert (imp.rows_created, imp.rows_updated) == (0, 1)
    anna.refresh_from_db()
    assert anna.email == SHOUT and anna.attributes == {"city": "Köln"}
    assert set(anna.subscriptions.values_list("mailing_list__slug", flat=True)) == {
        "news",
        "webinars",
    }


def test_it_adds_one_person_through_every_action_whatever_the_case(personas, staff, news):
    anna = actions.do_create_subscriber(personas.acme, email=SHOUT, actor=staff)

    with pytest.raises(actions.Conflict):
        actions.do_create_subscriber(personas.acme, email=QUIET, actor=staff)
    (result,) = actions.do_bulk_add_to_list(
        news, [{"email": QUIET, "name": "Other"}], confirmed=None, actor=staff
    )
    again = actions.do_bulk_add_to_list(
        news, [{"email": "Anna.Schmidt@BEISPIEL.de"}], confirmed=None, actor=staff
    )
    outcome = actions.do_subscribe(anna, [news], actor=staff, reason=Reason.BY_ADMIN)

    assert (result.result, result.subscriber_uuid) == ("subscribed", str(anna.uuid))
    assert (again[0].result, again[0].subscriber_uuid) == ("already", str(anna.uuid))
    assert outcome[0].result == "already"
    assert Subscriber.objects.filter(workspace=personas.acme).count() == 1


def test_it_counts_two_spellings_in_one_bulk_call_as_one_item(personas, staff, news):
    results = actions.do_bulk_add_to_list(
        news, [{"email": SHOUT}, {"email": QUIET}], confirmed=None, actor=staff
    )

    assert [r.result for r in results] == ["created", "invalid"]
    assert results[1].reason == "the same address as item 0"


def test_it_lets_a_person_retype_their_address_in_another_case(personas, staff):
    anna = actions.do_create_subscriber(personas.acme, email=SHOUT, actor=staff)
    other = actions.do_create_subscriber(personas.acme, email="b@example.com", actor=staff)

    actions.do_update_subscriber(anna, email=QUIET, actor=staff)
    with pytest.raises(actions.Conflict):
        actions.do_update_subscriber(other, email="Anna.Schmidt@beispiel.de", actor=staff)

    anna.refresh_from_db()
    assert (anna.email, anna.email_key) == ("anna.schmidt@beispiel.de", "anna.schmidt@beispiel.de")


def test_it_suppresses_every_spelling_of_an_erased_address(personas, staff, news, tmp_path):
    anna = actions.do_create_subscriber(personas.acme, email=SHOUT, actor=staff)
    actions.do_subscribe(anna, [news], actor=staff, reason=Reason.BY_ADMIN)

    actions.do_erase_subscriber(anna, actor=staff)

    assert actions.suppression_for(personas.acme, QUIET).reason == "erased"
    with pytest.raises(actions.Suppressed):
        actions.do_create_subscriber(personas.acme, email=QUIET, actor=staff)
    (result,) = actions.do_bulk_add_to_list(news, [{"email": QUIET}], confirmed=None, actor=staff)
    assert result.result == "suppressed"
    imp = run(personas.acme, write(tmp_path, "again.csv", f"email\n{QUIET}\n"))
    assert (
        report(imp)[0][1]
        == "suppressed (erased at the person's request): never added or subscribed again"
    )
    assert not Subscriber.objects.filter(workspace=personas.acme).exists()
    assert Suppression.objects.filter(workspace=personas.acme).count() == 1


def test_it_finds_a_person_by_any_spelling_of_their_address(personas, staff):
    anna = actions.do_create_subscriber(personas.acme, email=SHOUT, actor=staff)

    assert queries.subscriber_by_email(personas.acme, "anna.schmidt@beispiel.de") == anna
    assert queries.subscriber_by_email(personas.evil, "anna.schmidt@beispiel.de") is None
