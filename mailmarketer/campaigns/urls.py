"""Campaign content pages, all under /app/<ws>/campaigns/; each view names its permission. The
list, one campaign's page, its status changes, the test send and the ledger are delivery's
(delivery/urls.py), under the same prefix."""

from django.urls import path

from . import views_campaigns as c
from . import views_layouts as layouts
from . import views_preview as preview

ONE = "app/<slug:ws>/campaigns/<int:campaign_id>/"

urlpatterns = [
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
    path(ONE + "edit/", c.campaign_edit, name="campaign-edit"),
    path(ONE + "attachments/", c.attachment_add, name="campaign-attachment-add"),
    path(
        ONE + "attachments/<int:attachment_id>/remove/",
        c.attachment_remove,
        name="campaign-attachment-remove",
    ),
    path(ONE + "clone/", c.campaign_clone, name="campaign-clone"),
    path(ONE + "delete/", c.campaign_delete, name="campaign-delete"),
    path(ONE + "preview/", preview.campaign_preview, name="campaign-preview"),
    path(ONE + "preview/html", preview.campaign_preview_html, name="campaign-preview-html"),
    # The editor: live preview of the unsaved form, the person it is made for, images.
    path(
        "app/<slug:ws>/campaigns/live-preview/", preview.live_preview, name="campaign-live-preview"
    ),
    path(
        "app/<slug:ws>/campaigns/live-preview/html",
        preview.live_preview_html,
        name="campaign-live-preview-html",
    ),
    path(
        "app/<slug:ws>/campaigns/live-preview/people/",
        preview.live_people,
        name="campaign-live-people",
    ),
    path("app/<slug:ws>/campaigns/live-preview/as/", preview.live_as, name="campaign-live-as"),
]
