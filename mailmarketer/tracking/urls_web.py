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
