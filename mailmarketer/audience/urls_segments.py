"""Segment routes. Each view names its permission in its decorator (views_segments.py): pages
and counts need audience.view, each change needs audience.manage."""

from django.urls import path

from . import views_segments as v

P = "app/<slug:ws>/audience/segments/"

urlpatterns = [
    path(P, v.segment_list, name="segment-list"),
    path(f"{P}new/", v.segment_new, name="segment-new"),
    path(f"{P}count/", v.segment_count_draft, name="segment-count-draft"),
    path(f"{P}<int:segment_id>/", v.segment_detail, name="segment"),
    path(f"{P}<int:segment_id>/edit/", v.segment_edit, name="segment-edit"),
    path(f"{P}<int:segment_id>/count/", v.segment_count, name="segment-count"),
    path(f"{P}<int:segment_id>/delete/", v.segment_delete, name="segment-delete"),
]
