"""Subscriber import pages, under /app/<ws>/audience/imports/ (views_import.py). All of them
need audience.manage."""

from django.urls import path

from . import views_import as views

urlpatterns = [
    path("", views.imports, name="audience-imports"),
    path("new/", views.import_new, name="audience-import-new"),
    path("<int:import_id>/", views.import_detail, name="audience-import"),
    path("<int:import_id>/mapping/", views.import_mapping, name="audience-import-mapping"),
    path(
        "<int:import_id>/progress/",
        views.import_progress_fragment,
        name="audience-import-progress",
    ),
    path("<int:import_id>/errors.csv", views.import_errors, name="audience-import-errors"),
    path("<int:import_id>/cancel/", views.import_cancel, name="audience-import-cancel"),
    path("<int:import_id>/resume/", views.import_resume, name="audience-import-resume"),
    path("<int:import_id>/delete/", views.import_delete, name="audience-import-delete"),
]
