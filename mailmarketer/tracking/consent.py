"""Whether a person's opens and clicks may be linked to them (identified tracking).

`identified_allowed` is the one seam: the workspace's mode says identified, and where the
workspace requires consent for tracking, the person has it, as audience decides it
(`audience.queries.has_tracking_consent`: the newest tracking record is a confirmation, or a
grant that needed none). No consent, no link.
"""

from __future__ import annotations

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.models import Subscriber
from mailmarketer.audience.queries import has_tracking_consent as audience_has_tracking_consent


def identified_allowed(
    *, mode: str, requires_consent: bool, workspace_id: int, subscriber_id: int | None
) -> bool:
    if mode != TrackingMode.IDENTIFIED or subscriber_id is None:
        return False
    if not requires_consent:
        return True
    return has_tracking_consent(workspace_id, subscriber_id)


def has_tracking_consent(workspace_id: int, subscriber_id: int) -> bool:
    subscriber = (
        Subscriber.objects.filter(pk=subscriber_id, workspace_id=workspace_id)
        .select_related("workspace")
        .first()
    )
    return subscriber is not None and audience_has_tracking_consent(
        subscriber.workspace, subscriber
    )
