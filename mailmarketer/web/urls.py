from django.urls import path

from . import metrics, views, views_help, views_outbox

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("app/", views.app_home, name="app-home"),
    path("app/switch/", views.app_switch, name="app-switch"),
    # Before app/<ws>/: "help" is not a workspace (accounts.models.RESERVED_WORKSPACE_SLUGS).
    path("app/help/", views_help.help_index, name="help"),
    path("app/help/<slug:page>/", views_help.help_page, name="help-page"),
    path("favicon.ico", views_help.favicon, name="favicon"),
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
