"""/segments: saved rule trees over subscribers, and how many people match one now.

Thin over audience.segments (validation, compilation, the actions). Rules may compare an
address, a name or an attribute's value; a token without `audience.view_personal_data` sees such
values masked, as the segment pages show them (segments.kinds.tests_personal_data decides which).
"""

from __future__ import annotations

import copy

from django.http import Http404
from ninja import Router, Status

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.segments import SegmentRuleError, count_segment, walk
from mailmarketer.audience.segments.actions import do_create_segment
from mailmarketer.audience.segments.kinds import reveal_safe_value, tests_personal_data
from mailmarketer.audience.segments.queries import get_segment, segments_for

from .access import require
from .audience_schemas import SegmentCount, SegmentIn, SegmentOut, SegmentsOut
from .errors import READ_ERRORS, WRITE_ERRORS, ApiError, FieldErrors
from .subscribers import reveals

router = Router(tags=["segments"])


def masked_rules(rules: dict) -> dict:
    """The tree with the values that belong to a person masked (segments.kinds decides which:
    an address, a name or an attribute's value; not a domain)."""
    rules = copy.deepcopy(rules)
    for _, node in walk(rules["root"]):
        if tests_personal_data(node):
            node["value"] = reveal_safe_value(node)
    return rules


def segment_out(segment, *, reveal: bool) -> dict:
    return {
        "id": segment.pk,
        "name": segment.name,
        "description": segment.description,
        "rules": segment.rules if reveal else masked_rules(segment.rules),
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


@router.get("/segments", response={200: SegmentsOut, **READ_ERRORS}, summary="All segments")
@require(p.AUDIENCE_VIEW)
def all_segments(request):
    """By name."""
    reveal = reveals(request)
    return {"segments": [segment_out(s, reveal=reveal) for s in segments_for(request.workspace)]}


@router.post("/segments", response={201: SegmentOut, **WRITE_ERRORS}, summary="Save a segment")
@require(p.AUDIENCE_MANAGE)
def create_segment(request, payload: SegmentIn):
    """Invalid rules are refused with 422 naming the node (`rules.root.children[0].op`); a
    name already used in this workspace with 409."""
    try:
        segment = do_create_segment(
            request.workspace,
            name=payload.name,
            description=payload.description,
            rules=payload.rules,
            actor=Actor.from_request(request),
        )
    except SegmentRuleError as exc:
        raise FieldErrors([{"field": exc.path, "message": exc.message}]) from exc
    return Status(201, segment_out(segment, reveal=reveals(request)))


@router.get(
    "/segments/{segment_id}/count",
    response={200: SegmentCount, **READ_ERRORS},
    summary="How many subscribers a segment matches now",
)
@require(p.AUDIENCE_VIEW)
def segment_count(request, segment_id: str):
    """One COUNT query over the workspace's subscribers; a count is not personal data."""
    segment = get_segment(request.workspace, segment_id)
    if segment is None:
        raise Http404("no such segment in this workspace")
    try:
        count = count_segment(request.workspace, segment.rules)
    except SegmentRuleError as exc:
        # Saved rules were valid when saved; a later change to the format could make them not.
        raise ApiError(
            409, f"this segment's rules cannot be counted: {exc}", code="invalid_rules"
        ) from exc
    return {"id": segment.pk, "count": count}
