"""The links a message carries to the signup pages, made per recipient by the delivery engine.

Cheap on purpose (a campaign to a million people calls this a million times): the path prefix is
resolved once per process, so a call costs one token signature and string formatting.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.urls import reverse

from mailmarketer.audience.tokens import make_unsubscribe_token


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
