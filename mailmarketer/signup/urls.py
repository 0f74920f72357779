"""Signup routes: the public pages under /f/ (DESIGN.md section 3) and the staff's form
pages under /app/<ws>/forms/."""

from django.conf import settings
from django.urls import include, path

from . import (
    views,
    views_altcha,
    views_manage,
    views_public,
    views_resources,
    views_undo,
    views_webinars,
)

urlpatterns = [
    path(
        "app/<slug:ws>/settings/forms/",
        views_altcha.protection,
        name="settings-forms-protection",
    ),
    path(
        "app/<slug:ws>/settings/forms/save/",
        views_altcha.protection_save,
        name="settings-forms-protection-save",
    ),
    path("app/<slug:ws>/forms/", include("mailmarketer.signup.urls_forms")),
    path("f/c/<str:token>", views_public.confirm, name="signup-confirm"),
    path("app/<slug:ws>/events/", include("mailmarketer.signup.urls_webinars")),
    path("f/w/<str:token>", views_webinars.cancel, name="webinar-cancel"),
    path("f/r/<str:token>", views_resources.download, name="resource-download"),
    path("app/<slug:ws>/resources/", include("mailmarketer.signup.urls_resources")),
    path("app/<slug:ws>/leads/", include("mailmarketer.signup.urls_leads")),
    # The link in every marketing message: GET shows a page, POST unsubscribes (RFC 8058).
    path("f/u/<str:token>", views.unsubscribe, name="unsubscribe"),
    # "I did this by mistake" on the page after unsubscribing (a POST with CSRF).
    path("f/u/<str:token>/undo", views_undo.unsubscribe_undo, name="unsubscribe-undo"),
    # The preference centre ("Manage your subscription" in every message) and its mailed links.
    path("f/m/<str:token>", views_manage.manage, name="signup-manage"),
    path("f/m/data/<str:token>", views_manage.data_download, name="signup-manage-data"),
    path("f/m/erase/<str:token>", views_manage.erase, name="signup-manage-erase"),
]

if settings.BENCH_CONSTANT_VIEW:  # benchmarks/signup_bench.py only (off unless set)
    urlpatterns.append(path("bench/constant", views_altcha.bench_constant))
