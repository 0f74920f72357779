"""Downloads and leads are facts segments select on: "downloaded" and "lead" conditions,
workspace-scoped, each with its exact complement."""

from __future__ import annotations

import pytest
from django.test import Client

from mailmarketer.audience import actions as audience
from mailmarketer.audience.segments import SegmentRuleError, segment_queryset, validate_rules
from mailmarketer.signup import leads
from mailmarketer.signup.models import Lead

from .kinds_support import download_path, evaluation_form, make_resource, resource_form
from .support import post


def rules(*children):
    return {"version": 1, "root": {"type": "group", "match": "all", "children": list(children)}}


def emails(workspace, *children) -> list[str]:
    return sorted(s.email for s in segment_queryset(workspace, rules(*children)))


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


def test_it_selects_who_downloaded_a_resource_and_who_did_not(personas, staff, news):
    guide = make_resource(personas.acme, staff)
    form = resource_form(personas.acme, staff, guide, lists=[news])
    Client().get(download_path(post(form, {"email": "ann@example.com"}).content.decode()))
    post(form, {"email": "bo@example.com"})  # asked, never downloaded
    audience.do_create_subscriber(personas.acme, email="cy@example.com", actor=staff)
    did = {"type": "downloaded", "resource": guide.pk}
    assert emails(personas.acme, did) == ["ann@example.com"]
    assert emails(personas.acme, {**did, "member": False}) == ["bo@example.com", "cy@example.com"]
    assert emails(personas.evil, did) == []


def test_it_selects_people_by_their_leads_status(
    personas, staff, django_capture_on_commit_callbacks
):
    form = evaluation_form(personas.acme, staff)
    for email in ("ann@example.com", "bo@example.com"):
        with django_capture_on_commit_callbacks():
            post(form, {"email": email, "company": "X", "product": "Starter"})
    ann_lead = Lead.objects.get(subscriber__email="ann@example.com")
    leads.do_update_lead(ann_lead, status="contacted", actor=staff)
    assert emails(personas.acme, {"type": "lead"}) == ["ann@example.com", "bo@example.com"]
    assert emails(personas.acme, {"type": "lead", "status": "contacted"}) == ["ann@example.com"]
    no = {"type": "lead", "status": "contacted", "member": False}
    assert emails(personas.acme, no) == ["bo@example.com"]


@pytest.mark.parametrize(
    "node",
    [
        {"type": "downloaded"},
        {"type": "downloaded", "resource": "1"},
        {"type": "downloaded", "resource": 1, "member": "yes"},
        {"type": "lead", "status": "won"},
        {"type": "lead", "extra": 1},
    ],
)
def test_it_refuses_a_malformed_condition_naming_where(node):
    with pytest.raises(SegmentRuleError, match=r"rules\.root\.children\[0\]"):
        validate_rules(rules(node))


def test_it_refuses_a_resource_of_another_workspace(personas, staff):
    other = make_resource(personas.evil, staff)
    with pytest.raises(SegmentRuleError, match="no resource"):
        validate_rules(rules({"type": "downloaded", "resource": other.pk}), workspace=personas.acme)
