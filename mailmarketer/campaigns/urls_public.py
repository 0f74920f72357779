from django.urls import path

from . import views_public

urlpatterns = [
    path("f/view/<str:token>", views_public.view_in_browser, name="campaign-view"),
    path("f/archive/<uuid:uuid>/", views_public.archive, name="campaign-archive"),
    path("archive/<slug:ws>/", views_public.archive_index, name="campaign-archive-index"),
]
