"""Delivery routes; each view names its permission in its decorator.

- Sending a campaign, under /app/<ws>/campaigns/ beside its content pages (campaigns/urls.py):
  the list with progress, one campaign's page and its progress fragment, its status changes, the
  test send and the ledger (views_campaign.py, views_ledger.py).
- The sending settings, under /app/<ws>/settings/sending/ beside the workspace settings
  (views_senders.py): the overview needs settings.view, every form and change settings.manage.
"""

from django.urls import path

from . import views_campaign as c
from . import views_ledger as ledger
from . import views_senders as v
from .bounces import views as bounces

ONE = "app/<slug:ws>/campaigns/<int:campaign_id>/"

urlpatterns = [
    path("app/<slug:ws>/bounces/", bounces.bounces_home, name="bounces-home"),
    path("app/<slug:ws>/deliverability/", bounces.deliverability_page, name="deliverability"),
    path("app/<slug:ws>/bounces/<int:bounce_id>/", bounces.bounce_detail, name="bounce"),
    path("app/<slug:ws>/bounces/unmatched/", bounces.bounces_unmatched, name="bounces-unmatched"),
    path("app/<slug:ws>/settings/bounces/", bounces.bounce_settings, name="bounce-settings"),
    path(
        "app/<slug:ws>/settings/bounces/webhook-key/",
        bounces.bounce_webhook_key,
        name="bounce-webhook-key",
    ),
    path("app/<slug:ws>/settings/bounces/mailbox/", bounces.bounce_mailbox, name="bounce-mailbox"),
    path("hooks/bounces/<slug:provider>/<str:key>/", bounces.webhook, name="bounce-webhook"),
    path("app/<slug:ws>/campaigns/", c.campaigns_home, name="campaigns-home"),
    path(ONE, c.campaign_detail, name="campaign"),
    path(ONE + "progress/", c.campaign_progress, name="campaign-progress"),
    path(ONE + "start/", c.campaign_start, name="campaign-start"),
    path(ONE + "schedule/", c.campaign_schedule, name="campaign-schedule"),
    path(ONE + "unschedule/", c.campaign_unschedule, name="campaign-unschedule"),
    path(ONE + "pause/", c.campaign_pause, name="campaign-pause"),
    path(ONE + "resume/", c.campaign_resume, name="campaign-resume"),
    path(ONE + "cancel/", c.campaign_cancel, name="campaign-cancel"),
    path(ONE + "retry/", c.campaign_retry, name="campaign-retry"),
    path(ONE + "test/", c.campaign_test_send, name="campaign-test-send"),
    path(ONE + "deliveries/", ledger.campaign_ledger, name="campaign-ledger"),
    path(ONE + "empty-variables/", c.campaign_empty_variables, name="campaign-empty-variables"),
    path(ONE + "deliveries/export/", ledger.campaign_ledger_export, name="campaign-ledger-export"),
    path("app/<slug:ws>/settings/sending/", v.sending, name="sending"),
    path(
        "app/<slug:ws>/settings/sending/servers/new/", v.server_create, name="sending-server-create"
    ),
    path(
        "app/<slug:ws>/settings/sending/servers/<int:server_id>/",
        v.server_edit,
        name="sending-server-edit",
    ),
    path(
        "app/<slug:ws>/settings/sending/servers/<int:server_id>/delete/",
        v.server_delete,
        name="sending-server-delete",
    ),
    path(
        "app/<slug:ws>/settings/sending/servers/<int:server_id>/test/",
        v.server_test,
        name="sending-server-test",
    ),
    path("app/<slug:ws>/settings/sending/dkim/new/", v.dkim_create, name="sending-dkim-create"),
    path(
        "app/<slug:ws>/settings/sending/dkim/<int:key_id>/rotate/",
        v.dkim_rotate,
        name="sending-dkim-rotate",
    ),
    path(
        "app/<slug:ws>/settings/sending/dkim/<int:key_id>/delete/",
        v.dkim_delete,
        name="sending-dkim-delete",
    ),
]
