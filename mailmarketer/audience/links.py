"""The links every message carries (unsubscribe, manage, view in browser, tracked clicks and the
open pixel), made per recipient by the delivery engine and by the campaign's public pages.

They live here, below delivery, signup and campaigns, because each of those makes or reads them:
the routes are named (reversed by name, never imported), the tokens are signed with the helpers
of audience.tokens and lib.idtokens.

Cheap on purpose (a campaign to a million people calls this a million times): the path prefix is
resolved once per process, so a call costs one token signature and string formatting.
"""

from __future__ import annotations

import binascii
import hashlib
from functools import cache

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare

from mailmarketer.audience.tokens import (
    MANAGE_SALT,
    UNSUBSCRIBE_SALT,
    make_manage_token,
    make_unsubscribe_token,
)
from mailmarketer.lib.idtokens import make_token, make_tokens, read_token

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


def message_urls(workspace_id: int, subscriber_id: int, campaign_id: int) -> tuple[str, str, str]:
    """(unsubscribe_url, manage_url, view_url) of one campaign message, the same three strings,
    made together for the send path: the settings read once and the three tokens signed in
    one call (make_tokens), ~9 us -> ~4 us a message."""
    workspace, subscriber, campaign = int(workspace_id), int(subscriber_id), int(campaign_id)
    base = settings.BASE_URL
    person = f"{workspace}.{subscriber}"
    unsubscribe, manage, view = make_tokens(
        settings.SECRET_KEY,
        (UNSUBSCRIBE_SALT, f"{person}.{campaign}"),
        (MANAGE_SALT, person),
        (VIEW_SALT, f"{person}.{campaign}"),
    )
    return (
        f"{base}{_unsubscribe_path_prefix()}{unsubscribe}",
        f"{base}{_manage_path_prefix()}{manage}",
        f"{base}/f/view/{view}",
    )


def read_view_token(token: str) -> tuple[int, int, int] | None:
    """(workspace id, subscriber id, campaign id) from a view_url token; None when forged."""
    return read_token(VIEW_SALT, token, 3)


# -- tracked clicks and the open pixel (tracking/views_mail.py reads them) -------------------------
#
# `/t/c/<ledger id>.<link id>.<signature>` and `/t/o/<ledger id>.<signature>`: the ids name the
# ledger row (so a forwarded message's clicks are still that row's) and the stored link of its
# campaign; the signature is 96 bits of keyed BLAKE2b (a MAC by design, RFC 7693) with a key
# derived from the secret key and the token's kind, enough against forgery that must be tried
# online. A campaign with ten links to a million people makes ten million of them, so the key is
# derived once per process and a token costs one hash call (about a microsecond; HMAC-SHA256
# with salted_hmac's key derivation per call costs several).

CLICK_SALT = "mailmarketer.tracking.click"
OPEN_SALT = "mailmarketer.tracking.open"
_SIGNATURE_BYTES = 12
_MAX_ID_DIGITS = 18


@cache
def _mac_key(salt: str, secret: str) -> bytes:
    return hashlib.sha256((salt + secret).encode()).digest()


def _tracking_signature(salt: str, payload: str, secret: str | None = None) -> str:
    return _tracking_mac(_mac_key(salt, secret or settings.SECRET_KEY), payload)


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _tracking_mac(key: bytes, payload: str) -> str:
    # base64.urlsafe_b64encode(digest).decode() without its Python layers (12 bytes: no "=").
    digest = hashlib.blake2b(payload.encode(), key=key, digest_size=_SIGNATURE_BYTES).digest()
    return binascii.b2a_base64(digest, newline=False).translate(_URLSAFE).decode("ascii")


def _read_ids(salt: str, token: str, count: int) -> tuple[int, ...] | None:
    parts = (token or "")[:80].split(".")
    if len(parts) != count + 1:
        return None
    ids = parts[:count]
    if not all(p.isascii() and p.isdigit() and len(p) <= _MAX_ID_DIGITS for p in ids):
        return None
    payload = ".".join(ids)
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        if constant_time_compare(_tracking_signature(salt, payload, secret), parts[count]):
            return tuple(int(p) for p in ids)
    return None


def click_token(delivery_id: int, link_id: int) -> str:
    payload = f"{int(delivery_id)}.{int(link_id)}"
    return f"{payload}.{_tracking_signature(CLICK_SALT, payload)}"


def tracking_tokens(delivery_id: int, link_ids: list[int], pixel: bool) -> list[str]:
    """click_token(delivery_id, link) for each of link_ids, then open_token(delivery_id) when
    `pixel`: the same tokens, with the secret read once and no Python base64 (the send path's
    tokens of one message, delivery/prebuilt.py)."""
    secret = settings.SECRET_KEY
    delivery = int(delivery_id)
    tokens = []
    if link_ids:
        key = _mac_key(CLICK_SALT, secret)
        for link in link_ids:
            payload = f"{delivery}.{int(link)}"
            tokens.append(f"{payload}.{_tracking_mac(key, payload)}")
    if pixel:
        payload = str(delivery)
        tokens.append(f"{payload}.{_tracking_mac(_mac_key(OPEN_SALT, secret), payload)}")
    return tokens


def read_click_token(token: str) -> tuple[int, int] | None:
    """(ledger id, link id), or None for anything altered, truncated or forged."""
    ids = _read_ids(CLICK_SALT, token, 2)
    return None if ids is None else (ids[0], ids[1])


def open_token(delivery_id: int) -> str:
    payload = str(int(delivery_id))
    return f"{payload}.{_tracking_signature(OPEN_SALT, payload)}"


def read_open_token(token: str) -> int | None:
    ids = _read_ids(OPEN_SALT, token, 1)
    return None if ids is None else ids[0]


@cache
def _tracking_prefix(name: str) -> str:
    marker = "TOKEN"
    return reverse(name, args=[marker])[: -len(marker)]


def click_url_prefix() -> str:
    """The absolute click URL without its token: `<prefix><click_token(...)>`."""
    return settings.BASE_URL + _tracking_prefix("track-click")


def open_url_prefix() -> str:
    """The absolute open-pixel URL without its token: `<prefix><open_token(...)>`."""
    return settings.BASE_URL + _tracking_prefix("track-open")


def open_url(delivery_id: int) -> str:
    return f"{open_url_prefix()}{open_token(delivery_id)}"


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
