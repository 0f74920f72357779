"""The links every message carries (unsubscribe, manage, view in browser; tracked links will join
them), made per recipient by the delivery engine and by the campaign's public pages.

They live here, below delivery, signup and campaigns, because each of those makes or reads them:
the routes are named (reversed by name, never imported), the tokens are signed with the helpers
of audience.tokens and lib.idtokens.

Cheap on purpose (a campaign to a million people calls this a million times): the path prefix is
resolved once per process, so a call costs one token signature and string formatting.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.urls import reverse

from mailmarketer.audience.tokens import make_manage_token, make_unsubscribe_token
from mailmarketer.lib.idtokens import make_token, read_token

VIEW_SALT = "mailmarketer.campaigns.view-in-browser"


@cache
def _unsubscribe_path_prefix() -> str:
    # Resolved on first use, not at import: the URLconf may still be loading then.
    marker = "TOKEN"
    path = reverse("unsubscribe", args=[marker])
    return path[: -len(marker)]


def unsubscribe_url(workspace_id: int, subscriber_id: int, campaign_id: int | None) -> str:
    """The absolute one-click unsubscribe URL (List-Unsubscribe and the message footer)."""
    token = make_unsubscribe_token(workspace_id, subscriber_id, campaign_id)
    return f"{settings.BASE_URL}{_unsubscribe_path_prefix()}{token}"


@cache
def _manage_path_prefix() -> str:
    marker = "TOKEN"
    path = reverse("signup-manage", args=[marker])
    return path[: -len(marker)]


def manage_url(workspace_id: int, subscriber_id: int) -> str:
    """The absolute preference-centre URL ("Manage your subscription" in the footer): the
    person's lists, name, unsubscribe from everything, their data and its erasure. Signed, no
    expiry, like the unsubscribe link; the page changes nothing on GET."""
    token = make_manage_token(workspace_id, subscriber_id)
    return f"{settings.BASE_URL}{_manage_path_prefix()}{token}"


def view_url(workspace_id: int, subscriber_id: int, campaign_id: int) -> str:
    """The absolute "view in browser" URL: the message as this person received it."""
    token = make_token(VIEW_SALT, workspace_id, subscriber_id, campaign_id)
    return f"{settings.BASE_URL}/f/view/{token}"


def read_view_token(token: str) -> tuple[int, int, int] | None:
    """(workspace id, subscriber id, campaign id) from a view_url token; None when forged."""
    return read_token(VIEW_SALT, token, 3)
