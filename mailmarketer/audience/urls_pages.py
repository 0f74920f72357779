"""The audience pages, under /app/<ws>/audience/. Each view names its permission in its
decorator; reading pages need audience.view, each change is a POST needing audience.manage
(confirmation pages are the GET of the same URL), exports need audience.export."""

from django.urls import path

from . import views_lists as lists
from . import views_subscribers as subscribers
from . import views_suppression as suppression

urlpatterns = [
    path("", lists.lists_home, name="audience-home"),
    path("lists/new/", lists.list_create, name="audience-list-create"),
    path("lists/<int:list_id>/edit/", lists.list_edit, name="audience-list-edit"),
    path("lists/<int:list_id>/delete/", lists.list_delete, name="audience-list-delete"),
    path("export/", lists.export_page, name="audience-export"),
    path("export/download/", lists.export_download, name="audience-export-download"),
    path("subscribers/", subscribers.subscribers, name="audience-subscribers"),
    path("subscribers/new/", subscribers.subscriber_create, name="audience-subscriber-create"),
    path("subscribers/bulk/", subscribers.subscribers_bulk, name="audience-subscribers-bulk"),
    # <str:sid>, not <uuid:...>: a malformed id reaches the view and gets the same 404 as an
    # unknown one (and the route walk's sample values resolve).
    path("subscribers/<str:sid>/", subscribers.subscriber, name="audience-subscriber"),
    path(
        "subscribers/<str:sid>/profile/",
        subscribers.subscriber_profile,
        name="audience-subscriber-profile",
    ),
    path(
        "subscribers/<str:sid>/attributes/",
        subscribers.subscriber_attributes,
        name="audience-subscriber-attributes",
    ),
    path(
        "subscribers/<str:sid>/subscribe/",
        subscribers.subscriber_subscribe,
        name="audience-subscriber-subscribe",
    ),
    path(
        "subscribers/<str:sid>/unsubscribe/",
        subscribers.subscriber_unsubscribe,
        name="audience-subscriber-unsubscribe",
    ),
    path(
        "subscribers/<str:sid>/blocklist/",
        subscribers.subscriber_blocklist,
        name="audience-subscriber-blocklist",
    ),
    path(
        "subscribers/<str:sid>/unblock/",
        subscribers.subscriber_unblock,
        name="audience-subscriber-unblock",
    ),
    path(
        "subscribers/<str:sid>/delete/",
        subscribers.subscriber_delete,
        name="audience-subscriber-delete",
    ),
    path(
        "subscribers/<str:sid>/erase/",
        subscribers.subscriber_erase,
        name="audience-subscriber-erase",
    ),
    path(
        "subscribers/<str:sid>/export/",
        subscribers.subscriber_export,
        name="audience-subscriber-export",
    ),
    path("suppression/", suppression.suppression, name="audience-suppression"),
    path("suppression/add/", suppression.suppression_add, name="audience-suppression-add"),
    path("suppression/check/", suppression.suppression_check, name="audience-suppression-check"),
    path(
        "suppression/<int:suppression_id>/remove/",
        suppression.suppression_remove,
        name="audience-suppression-remove",
    ),
]
