"""Signup routes: the public pages under /f/ (DESIGN.md section 3) and the staff's form
pages under /app/<ws>/forms/."""

from django.urls import include, path

from . import views, views_manage, views_public

urlpatterns = [
    path("app/<slug:ws>/forms/", include("mailmarketer.signup.urls_forms")),
    path("f/c/<str:token>", views_public.confirm, name="signup-confirm"),
    # The link in every marketing message: GET shows a page, POST unsubscribes (RFC 8058).
    path("f/u/<str:token>", views.unsubscribe, name="unsubscribe"),
    # The preference centre ("Manage your subscription" in every message) and its mailed links.
    path("f/m/<str:token>", views_manage.manage, name="signup-manage"),
    path("f/m/data/<str:token>", views_manage.data_download, name="signup-manage-data"),
    path("f/m/erase/<str:token>", views_manage.erase, name="signup-manage-erase"),
]
