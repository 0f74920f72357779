"""Website tracking's staff pages (the /t/ edge is in urls.py); each view names its permission."""

from django.urls import path

from . import views_report, views_sites

SITES = "app/<slug:ws>/analytics/sites/"

urlpatterns = [
    # The navigation's "Analytics" (web/nav.py) lands here; merge point with the email reports.
    path("app/<slug:ws>/analytics/", views_sites.analytics_home, name="analytics-home"),
    path(SITES, views_sites.sites, name="sites"),
    path(SITES + "new/", views_sites.site_create, name="site-create"),
    path(SITES + "<int:site_id>/", views_sites.site_detail, name="site"),
    path(SITES + "<int:site_id>/edit/", views_sites.site_edit, name="site-edit"),
    path(SITES + "<int:site_id>/report/", views_report.site_report, name="site-report"),
]

from . import views_uploads  # noqa: E402 (staff uploads of access logs)

urlpatterns += [
    path(SITES + "<int:site_id>/logs/", views_uploads.log_upload_new, name="site-log-upload-new"),
    path(
        SITES + "<int:site_id>/logs/<int:upload_id>/",
        views_uploads.log_upload_detail,
        name="site-log-upload",
    ),
    path(
        SITES + "<int:site_id>/logs/<int:upload_id>/progress/",
        views_uploads.log_upload_progress,
        name="site-log-upload-progress",
    ),
]
