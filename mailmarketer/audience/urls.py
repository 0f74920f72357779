"""Audience routes, all under /app/<ws>/audience/. Each part of the audience UI keeps its own
route module; add yours here."""

from django.urls import include, path

urlpatterns: list = [
    path("", include("mailmarketer.audience.urls_segments")),
    # e.g. path("app/<slug:ws>/audience/", include("mailmarketer.audience.urls_pages")),
    path("app/<slug:ws>/audience/", include("mailmarketer.audience.urls_pages")),
    path("app/<slug:ws>/audience/imports/", include("mailmarketer.audience.urls_import")),
]

__all__ = ["include", "path", "urlpatterns"]
