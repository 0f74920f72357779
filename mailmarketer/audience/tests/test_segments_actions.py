"""Writes to segments: validated, audited (without rule values), one name per workspace."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import Segment
from mailmarketer.audience.segments import SegmentRuleError
from mailmarketer.audience.segments.actions import (
    do_create_segment,
    do_delete_segment,
    do_update_segment,
)
from mailmarketer.audience.segments.queries import get_segment, segments_for


def tree(*children, match="all"):
    return {"version": 1, "root": {"type": "group", "match": match, "children": list(children)}}


SECRET = {"type": "field", "field": "email", "op": "eq", "value": "secret.person@example.com"}


def test_it_creates_a_segment_with_normalised_rules_and_an_audit_row(personas, staff, news):
    segment = do_create_segment(
        personas.acme,
        name="  Confirmed news readers ",
        description="For the weekly",
        rules=tree({"type": "list", "list": news.pk, "status": "confirmed"}, SECRET),
        actor=staff,
    )
    assert segment.name == "Confirmed news readers"
    assert segment.created_by == personas.alice
    assert segment.rules["root"]["children"][0] == {
        "type": "list",
        "list": news.pk,
        "status": "confirmed",
        "member": True,
    }
    event = AuditEvent.objects.get(event="segment.created")
    assert (event.workspace, event.object_id) == (personas.acme, str(segment.pk))
    assert event.new == {"name": "Confirmed news readers", "conditions": 2}
    # A rule may hold an address; the append-only log must never.
    assert "secret.person" not in f"{event.object_repr} {event.old} {event.new}"


def test_it_refuses_a_bad_tree_and_saves_nothing(personas, staff):
    with pytest.raises(SegmentRuleError, match=r"rules\.root\.children\[0\]\.op: unknown operator"):
        do_create_segment(
            personas.acme,
            name="Broken",
            rules=tree({"type": "field", "field": "email", "op": "like", "value": "x"}),
            actor=staff,
        )
    assert not Segment.objects.exists()
    assert not AuditEvent.objects.filter(event__startswith="segment.").exists()


def test_it_refuses_a_list_of_another_workspace(personas, staff):
    from mailmarketer.audience.actions import do_create_list

    theirs = do_create_list(personas.evil, name="Theirs", slug="theirs", actor=staff)
    with pytest.raises(SegmentRuleError, match=f"no list with id {theirs.pk} in this workspace"):
        do_create_segment(
            personas.acme,
            name="Sneaky",
            rules=tree({"type": "list", "list": theirs.pk}),
            actor=staff,
        )


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "give the segment a name"), ("   ", "give the segment a name"), ("x" * 151, "longer")],
)
def test_it_refuses_a_missing_or_long_name(personas, staff, name, message):
    with pytest.raises(ActionError, match=message):
        do_create_segment(personas.acme, name=name, rules=tree(), actor=staff)


def test_it_keeps_names_unique_per_workspace(personas, staff):
    do_create_segment(personas.acme, name="VIPs", rules=tree(), actor=staff)
    with pytest.raises(Conflict, match="a segment named 'VIPs' already exists"):
        do_create_segment(personas.acme, name="VIPs", rules=tree(match="any"), actor=staff)
    other = do_create_segment(personas.evil, name="VIPs", rules=tree(), actor=staff)
    second = do_create_segment(personas.acme, name="Others", rules=tree(), actor=staff)
    with pytest.raises(Conflict):
        do_update_segment(second, name="VIPs", actor=staff)
    second.refresh_from_db()
    assert second.name == "Others"
    assert [s.name for s in segments_for(personas.evil)] == ["VIPs"]
    assert get_segment(personas.acme, other.pk) is None


def test_it_updates_only_what_changed_and_audits_field_names(personas, staff):
    segment = do_create_segment(personas.acme, name="A", rules=tree(), actor=staff)
    assert do_update_segment(segment, name="A", rules=tree(), actor=staff) is segment
    assert not AuditEvent.objects.filter(event="segment.updated").exists()
    do_update_segment(segment, name="B", rules=tree(SECRET), actor=staff)
    segment.refresh_from_db()
    assert segment.name == "B" and segment.rules == tree(SECRET)
    event = AuditEvent.objects.get(event="segment.updated")
    assert event.old == {"name": "A"}
    assert event.new == {"fields": ["name", "rules"], "conditions": 1, "name": "B"}


def test_it_leaves_the_segment_untouched_when_an_update_is_refused(personas, staff):
    segment = do_create_segment(personas.acme, name="Keep", rules=tree(), actor=staff)
    with pytest.raises(SegmentRuleError):
        do_update_segment(segment, name="Renamed", rules=tree({"type": "nope"}), actor=staff)
    assert segment.name == "Keep"
    segment.refresh_from_db()
    assert segment.name == "Keep"


def test_it_deletes_with_an_audit_row(personas, staff):
    segment = do_create_segment(personas.acme, name="Gone", rules=tree(SECRET), actor=staff)
    do_delete_segment(segment, actor=staff)
    assert not Segment.objects.exists()
    event = AuditEvent.objects.get(event="segment.deleted")
    assert event.old == {"name": "Gone", "conditions": 1}
