"""Tracking's staff pages (views_reports.py); each view names its permission."""

from django.urls import path

from . import views_reports as r

urlpatterns = [
    path(
        "app/<slug:ws>/campaigns/<int:campaign_id>/report/",
        r.campaign_report,
        name="campaign-report",
    ),
    path(
        "app/<slug:ws>/audience/subscribers/<str:sid>/activity/",
        r.subscriber_activity,
        name="subscriber-activity",
    ),
]
