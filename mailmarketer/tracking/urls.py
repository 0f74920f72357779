"""The `/t/` edge: public, cookieless, never an error page (see the package docstring)."""

from django.urls import path

from . import views_mail, views_web

urlpatterns: list = [
    path("o/<str:token>", views_mail.open_pixel, name="track-open"),
    path("c/<str:token>", views_mail.click, name="track-click"),
    path("ok", views_mail.edge_ok, name="track-ok"),
    # Website activity (trackweb): the snippet and its collect endpoint.
    path("mm.js", views_web.snippet, name="tracking-snippet"),
    path("e", views_web.collect, name="tracking-collect"),
]
