"""The staff's resource pages, under /app/<ws>/resources/ (views_resources.py)."""

from django.urls import path

from . import views_resources as views

urlpatterns = [
    path("", views.resources_home, name="resources-home"),
    path("new/", views.resource_create, name="resources-create"),
    path("<int:resource_id>/", views.resource_edit, name="resources-edit"),
]
