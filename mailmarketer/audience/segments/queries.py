"""Reads of saved segments, always inside one workspace."""

from __future__ import annotations

from ..models import Segment


def segments_for(workspace) -> list[Segment]:
    return list(Segment.objects.filter(workspace=workspace).order_by("name", "pk"))


def get_segment(workspace, segment_id) -> Segment | None:
    try:
        segment_id = int(segment_id)
    except (TypeError, ValueError):
        return None
    return Segment.objects.filter(workspace=workspace, pk=segment_id).first()
