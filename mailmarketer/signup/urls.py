"""Public signup routes, under /f/ (DESIGN.md section 3)."""

from django.urls import path

from . import views

urlpatterns = [
    # The link in every marketing message: GET shows a page, POST unsubscribes (RFC 8058).
    path("f/u/<str:token>", views.unsubscribe, name="unsubscribe"),
]
