"""Signed tokens that put a person's choice in a link: unsubscribe (one click, from any message)
and, later, the preference centre. They are HMACs with the secret key (lib/idtokens.py), never
stored; altering one byte makes it worthless. They do not expire (a person may unsubscribe from a
years-old message; RFC 8058 asks that the link keep working), and they carry no personal data:
ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailmarketer.lib.idtokens import make_token, read_token

UNSUBSCRIBE_SALT = "mailmarketer.audience.unsubscribe"


@dataclass(frozen=True)
class UnsubscribeRequest:
    workspace_id: int
    subscriber_id: int
    campaign_id: int | None


def make_unsubscribe_token(workspace_id: int, subscriber_id: int, campaign_id: int | None) -> str:
    return make_token(UNSUBSCRIBE_SALT, workspace_id, subscriber_id, campaign_id or 0)


def read_unsubscribe_token(token: str) -> UnsubscribeRequest | None:
    ids = read_token(UNSUBSCRIBE_SALT, token, 3)
    if ids is None:
        return None
    workspace_id, subscriber_id, campaign_id = ids
    return UnsubscribeRequest(workspace_id, subscriber_id, campaign_id or None)
