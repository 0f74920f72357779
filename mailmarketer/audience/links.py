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

from mailmarketer.audience.tokens import make_unsubscribe_token
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


def view_url(workspace_id: int, subscriber_id: int, campaign_id: int) -> str:
    """The absolute "view in browser" URL: the message as this person received it."""
    token = make_token(VIEW_SALT, workspace_id, subscriber_id, campaign_id)
    return f"{settings.BASE_URL}/f/view/{token}"


def read_view_token(token: str) -> tuple[int, int, int] | None:
    """(workspace id, subscriber id, campaign id) from a view_url token; None when forged."""
    return read_token(VIEW_SALT, token, 3)


# -- the identified tier of website tracking (tracking/views_web.py reads it) -------------------
# A person who has tracking consent and clicks a tracked link to a registered site lands with
# `?mm_vt=<token>` (the click redirect adds it with landing_url_with_visitor_token); the site's
# snippet moves it into the site's own localStorage, drops it from the shown URL, and sends it
# with later hits, which links them to the person. The token names ids only, is signed, and is
# worthless when altered; the collect endpoint checks the person's consent again on every hit.
VISITOR_SALT = "mailmarketer.tracking.visitor"
VISITOR_PARAM = "mm_vt"


def visitor_token(workspace_id: int, subscriber_id: int) -> str:
    return make_token(VISITOR_SALT, workspace_id, subscriber_id)


def read_visitor_token(token: str) -> tuple[int, int] | None:
    """(workspace id, subscriber id) from a visitor token; None when forged or altered."""
    if not isinstance(token, str) or len(token) > 80:
        return None
    return read_token(VISITOR_SALT, token, 2)


def landing_url_with_visitor_token(url: str, workspace_id: int, subscriber_id: int) -> str:
    """`url` with the person's visitor token added to its query (the caller decides that the
    URL is on a registered site and that the person has tracking consent)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if k != VISITOR_PARAM]
    query.append((VISITOR_PARAM, visitor_token(workspace_id, subscriber_id)))
    return urlunsplit(parts._replace(query=urlencode(query)))
