"""The staff's webinar pages, under /app/<ws>/events/ (views_webinars.py)."""

from django.urls import path

from . import views_webinars as views

urlpatterns = [
    path("", views.events_home, name="events-home"),
    path("new/", views.event_create, name="events-create"),
    path("<int:event_id>/", views.event_detail, name="events-detail"),
    path("<int:event_id>/edit/", views.event_edit, name="events-edit"),
    path("<int:event_id>/cancel/", views.event_cancel, name="events-cancel"),
    path("<int:event_id>/export.csv", views.event_export, name="events-export"),
    path(
        "<int:event_id>/attendance/import/",
        views.attendance_import,
        name="events-attendance-import",
    ),
    path(
        "<int:event_id>/attendance/<int:registration_id>/",
        views.attendance_mark,
        name="events-attendance",
    ),
    path(
        "<int:event_id>/registrations/<int:registration_id>/cancel/",
        views.registration_cancel,
        name="events-registration-cancel",
    ),
]
