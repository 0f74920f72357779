"""The audit rows of the UI shell's own pages: the outbox holds whole messages (recipients,
transactional data, reset links), so each look at it is on record like a look at a person.

Messages are named by their outbox id only, never by recipient or subject: the audit log holds
no personal data.
"""

from __future__ import annotations

from mailmarketer.accounts.actions import audit
from mailmarketer.accounts.actors import Actor


def record_outbox_listed(workspace, *, count: int, actor: Actor) -> None:
    """A page of the outbox list (recipients and subjects) was shown."""
    audit(
        "outbox.listed",
        actor=actor,
        workspace=workspace,
        object_type="outbox",
        new={"count": count},
    )


def record_outbox_viewed(workspace, *, message_id: str, part: str, actor: Actor) -> None:
    """One message was shown: its headers and text (`part` "message") or its HTML ("html")."""
    audit(
        "outbox.viewed",
        actor=actor,
        workspace=workspace,
        object_type="outbox_message",
        object_id=message_id,
        object_repr=f"outbox message {message_id}",
        new={"part": part},
    )
