"""The `/t/` edge: public, cookieless, never an error page (see the package docstring)."""

from django.urls import path

from . import views_web

urlpatterns: list = [
    # Website activity (trackweb): the snippet and its collect endpoint.
    path("mm.js", views_web.snippet, name="tracking-snippet"),
    path("e", views_web.collect, name="tracking-collect"),
]
