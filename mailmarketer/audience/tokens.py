"""Signed tokens that put a person's choice in a link: unsubscribe (one click, from any message)
and, later, the preference centre. They are HMACs with the secret key, never stored; altering one
byte makes it worthless. They do not expire (a person may unsubscribe from a years-old message;
RFC 8058 asks that the link keep working), and they carry no personal data: ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

UNSUBSCRIBE_SALT = "mailmarketer.audience.unsubscribe"


@dataclass(frozen=True)
class UnsubscribeRequest:
    workspace_id: int
    subscriber_id: int
    campaign_id: int | None


def make_unsubscribe_token(workspace_id: int, subscriber_id: int, campaign_id: int | None) -> str:
    # A compact positional payload keeps the token (and the header it lives in) short.
    return signing.dumps([workspace_id, subscriber_id, campaign_id or 0], salt=UNSUBSCRIBE_SALT)


def read_unsubscribe_token(token: str) -> UnsubscribeRequest | None:
    try:
        workspace_id, subscriber_id, campaign_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not all(isinstance(v, int) and v >= 0 for v in (workspace_id, subscriber_id, campaign_id)):
        return None
    return UnsubscribeRequest(workspace_id, subscriber_id, campaign_id or None)
