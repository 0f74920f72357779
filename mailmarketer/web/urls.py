from django.urls import path

from . import metrics, views, views_outbox

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("app/", views.app_home, name="app-home"),
    path("app/switch/", views.app_switch, name="app-switch"),
    path("app/<slug:ws>/", views.dashboard, name="app-dashboard"),
    path("app/<slug:ws>/outbox/", views_outbox.outbox_list, name="outbox"),
    path(
        "app/<slug:ws>/outbox/<str:message_id>/",
        views_outbox.outbox_message,
        name="outbox-message",
    ),
    path(
        "app/<slug:ws>/outbox/<str:message_id>/html",
        views_outbox.outbox_message_html,
        name="outbox-message-html",
    ),
]
