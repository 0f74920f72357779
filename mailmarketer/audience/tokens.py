"""Signed tokens that put a person's choice in a link: unsubscribe (one click, from any message)
and the preference centre (the "manage your subscription" link). They are HMACs with the
secret key (lib/idtokens.py), never stored; altering one byte makes it worthless. They do not
expire (a person may unsubscribe from a years-old message; RFC 8058 asks that the link keep
working), and they carry no personal data: ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailmarketer.lib.idtokens import make_token, read_token

UNSUBSCRIBE_SALT = "mailmarketer.audience.unsubscribe"
MANAGE_SALT = "mailmarketer.audience.manage"


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


@dataclass(frozen=True)
class ManageRequest:
    workspace_id: int
    subscriber_id: int


def make_manage_token(workspace_id: int, subscriber_id: int) -> str:
    """The preference centre of one person. Like the unsubscribe token it does not expire (the
    link sits in every message, however old) and carries ids only; its own salt, so an
    unsubscribe token is not a manage token and the other way round."""
    return make_token(MANAGE_SALT, workspace_id, subscriber_id)


def read_manage_token(token: str) -> ManageRequest | None:
    ids = read_token(MANAGE_SALT, token, 2)
    return None if ids is None else ManageRequest(*ids)
