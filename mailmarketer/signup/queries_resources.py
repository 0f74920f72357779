"""Reads of resources for the staff pages and the API; every one scoped to a workspace."""

from __future__ import annotations

from django.db.models import Count

from .models_resources import Resource, ResourceDownload


def resources_for(workspace):
    return Resource.objects.filter(workspace=workspace).order_by("title", "pk")


def get_resource(workspace, resource_id) -> Resource | None:
    return Resource.objects.filter(workspace=workspace, pk=resource_id).first()


def resources_with_counts(workspace):
    """Each resource with its downloads and the people who downloaded it."""
    return resources_for(workspace).annotate(
        download_count=Count("downloads", distinct=True),
        people_count=Count("downloads__subscriber", distinct=True),
    )


def downloads_of(subscriber):
    """The resources a person downloaded, newest first: the fact segments read."""
    return ResourceDownload.objects.filter(
        workspace_id=subscriber.workspace_id, subscriber=subscriber
    ).order_by("-downloaded_at", "-pk")
