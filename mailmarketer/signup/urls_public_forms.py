"""The public form routes, /f/<workspace>/<form> and its .json twin. Mounted last (see
mailmarketer/urls.py) so that the fixed /f/ routes of every package (/f/u/, /f/c/, /f/view/)
win over a workspace of the same name."""

from django.urls import path

from . import views_altcha, views_public

urlpatterns = [
    path("f/<slug:ws>/<slug:form_slug>", views_public.form_page, name="signup-form"),
    path("f/<slug:ws>/<slug:form_slug>.json", views_public.form_json, name="signup-form-json"),
    path(
        "f/<slug:ws>/<slug:form_slug>/challenge",
        views_altcha.challenge,
        name="signup-form-challenge",
    ),
]
