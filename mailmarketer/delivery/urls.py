"""Delivery routes. The sending settings live under /app/<ws>/settings/sending/, beside the
workspace settings; each view names its permission in its decorator (views_senders.py): the
overview needs settings.view, every form and change settings.manage."""

from django.urls import path

from . import views_senders as v

urlpatterns = [
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
