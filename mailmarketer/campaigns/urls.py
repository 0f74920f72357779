"""Campaign pages, all under /app/<ws>/campaigns/; each view names its permission."""

from django.urls import path

from . import views_campaigns as c
from . import views_layouts as layouts
from . import views_ledger as ledger
from . import views_preview as preview

ONE = "app/<slug:ws>/campaigns/<int:campaign_id>/"

urlpatterns = [
    path("app/<slug:ws>/campaigns/", c.campaigns_home, name="campaigns-home"),
    path("app/<slug:ws>/campaigns/new/", c.campaign_new, name="campaign-new"),
    path("app/<slug:ws>/campaigns/layouts/", layouts.layouts, name="campaign-layouts"),
    path("app/<slug:ws>/campaigns/layouts/new/", layouts.layout_create, name="campaign-layout-new"),
    path(
        "app/<slug:ws>/campaigns/layouts/<int:layout_id>/",
        layouts.layout_edit,
        name="campaign-layout-edit",
    ),
    path(
        "app/<slug:ws>/campaigns/layouts/<int:layout_id>/delete/",
        layouts.layout_delete,
        name="campaign-layout-delete",
    ),
    path(ONE, c.campaign_detail, name="campaign"),
    path(ONE + "progress/", c.campaign_progress, name="campaign-progress"),
    path(ONE + "edit/", c.campaign_edit, name="campaign-edit"),
    path(ONE + "attachments/", c.attachment_add, name="campaign-attachment-add"),
    path(
        ONE + "attachments/<int:attachment_id>/remove/",
        c.attachment_remove,
        name="campaign-attachment-remove",
    ),
    path(ONE + "clone/", c.campaign_clone, name="campaign-clone"),
    path(ONE + "delete/", c.campaign_delete, name="campaign-delete"),
    path(ONE + "start/", c.campaign_start, name="campaign-start"),
    path(ONE + "schedule/", c.campaign_schedule, name="campaign-schedule"),
    path(ONE + "unschedule/", c.campaign_unschedule, name="campaign-unschedule"),
    path(ONE + "pause/", c.campaign_pause, name="campaign-pause"),
    path(ONE + "resume/", c.campaign_resume, name="campaign-resume"),
    path(ONE + "cancel/", c.campaign_cancel, name="campaign-cancel"),
    path(ONE + "retry/", c.campaign_retry, name="campaign-retry"),
    path(ONE + "preview/", preview.campaign_preview, name="campaign-preview"),
    path(ONE + "preview/html", preview.campaign_preview_html, name="campaign-preview-html"),
    path(ONE + "test/", preview.campaign_test_send, name="campaign-test-send"),
    path(ONE + "deliveries/", ledger.campaign_ledger, name="campaign-ledger"),
    path(ONE + "deliveries/export/", ledger.campaign_ledger_export, name="campaign-ledger-export"),
]
