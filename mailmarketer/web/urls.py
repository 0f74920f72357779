from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("app/", views.app_home, name="app-home"),
    path("app/switch/", views.app_switch, name="app-switch"),
    path("app/<slug:ws>/", views.dashboard, name="app-dashboard"),
]
