"""Facts per person: the one upsert adds counts and widens times, per workspace, on both
databases, and goes with the person on erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailmarketer.audience.facts import Hit, object_key, record_facts
from mailmarketer.audience.models import Fact, FactDay, FactKind
from mailmarketer.testing import Subscriber, many_people

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def ws(personas):
    return personas.acme


@pytest.fixture
def people(ws, news):
    return many_people(ws, [news], 3)


def _hit(person, kind=FactKind.CLICKED, key="campaign:1", at=T0):
    return Hit(person.workspace_id, person.pk, kind, key, at)


def test_it_folds_hits_about_one_object_into_one_fact(people):
    ann = people[0]
    touched = record_facts([_hit(ann, at=T0 + timedelta(hours=2)), _hit(ann), _hit(ann)])
    assert touched == 1
    fact = Fact.objects.get(subscriber=ann)
    assert (fact.count, fact.first_at, fact.last_at) == (3, T0, T0 + timedelta(hours=2))


def test_it_adds_to_what_is_stored_instead_of_overwriting(people):
    ann = people[0]
    record_facts([_hit(ann, at=T0)])
    record_facts([_hit(ann, at=T0 - timedelta(days=1)), _hit(ann, at=T0 + timedelta(days=3))])
    fact = Fact.objects.get(subscriber=ann)
    assert fact.count == 3
    assert fact.first_at == T0 - timedelta(days=1)
    assert fact.last_at == T0 + timedelta(days=3)
    days = dict(FactDay.objects.filter(subscriber=ann).values_list("day", "count"))
    assert days == {
        (T0 - timedelta(days=1)).date(): 1,
        T0.date(): 1,
        (T0 + timedelta(days=3)).date(): 1,
    }


def test_it_keeps_people_kinds_and_objects_apart(people):
    ann, ben = people[0], people[1]
    record_facts(
        [
            _hit(ann),
            _hit(ben),
            _hit(ann, kind=FactKind.OPENED),
            _hit(ann, key="campaign:2"),
        ]
    )
    assert Fact.objects.filter(subscriber=ann).count() == 3
    assert Fact.objects.filter(subscriber=ben).count() == 1


def test_it_writes_many_people_in_chunks(ws, people):
    hits = [_hit(people[i % len(people)], key=f"link:{i}") for i in range(1_203)]
    assert record_facts(hits) == 1_203
    assert Fact.objects.filter(workspace=ws).count() == 1_203


def test_it_cuts_a_long_object_key_to_fit(people):
    key = object_key("path", "3:/" + "a" * 400)
    record_facts([_hit(people[0], kind=FactKind.VISITED, key=key)])
    assert len(Fact.objects.get().object_key) == 255


def test_it_goes_with_the_person(people):
    ann = people[0]
    record_facts([_hit(ann)])
    Subscriber.objects.filter(pk=ann.pk).delete()
    assert not Fact.objects.exists()
    assert not FactDay.objects.exists()


def test_it_writes_nothing_for_no_hits(db):
    assert record_facts([]) == 0
