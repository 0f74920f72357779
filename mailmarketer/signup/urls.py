"""Signup routes: the public pages under /f/ (DESIGN.md section 3) and the staff's form
pages under /app/<ws>/forms/."""

from django.urls import include, path

from . import views, views_public, views_resources

urlpatterns = [
    path("app/<slug:ws>/forms/", include("mailmarketer.signup.urls_forms")),
    path("f/c/<str:token>", views_public.confirm, name="signup-confirm"),
    path("f/r/<str:token>", views_resources.download, name="resource-download"),
    path("app/<slug:ws>/resources/", include("mailmarketer.signup.urls_resources")),
    path("app/<slug:ws>/leads/", include("mailmarketer.signup.urls_leads")),
    # The link in every marketing message: GET shows a page, POST unsubscribes (RFC 8058).
    path("f/u/<str:token>", views.unsubscribe, name="unsubscribe"),
]
