"""Whether a person's opens and clicks may be linked to them (identified tracking).

`identified_allowed` is the one seam: the workspace's mode says identified, and where the
workspace requires consent for tracking, the person has it. The consent-notice work adds
`audience.queries.has_tracking_consent(workspace, subscriber)`; until it exists, the person's
latest entry for the purpose "tracking" in the consent ledger decides (a grant or confirmation
without a later withdrawal), and without any entry the workspace setting decides: no consent,
no link.
"""

from __future__ import annotations

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.models import ConsentRecord

TRACKING_PURPOSE = "tracking"


def identified_allowed(
    *, mode: str, requires_consent: bool, workspace_id: int, subscriber_id: int | None
) -> bool:
    if mode != TrackingMode.IDENTIFIED or subscriber_id is None:
        return False
    if not requires_consent:
        return True
    return has_tracking_consent(workspace_id, subscriber_id)


def has_tracking_consent(workspace_id: int, subscriber_id: int) -> bool:
    try:  # audience's own answer once it has one (the forms' tracking consent notice)
        from mailmarketer.audience.queries import has_tracking_consent as audience_answer
    except ImportError:
        audience_answer = None
    if audience_answer is not None:
        from mailmarketer.audience.models import Subscriber

        subscriber = Subscriber.objects.filter(pk=subscriber_id, workspace_id=workspace_id).first()
        return subscriber is not None and bool(audience_answer(subscriber.workspace, subscriber))
    last = (
        ConsentRecord.objects.filter(
            workspace_id=workspace_id, subscriber_id=subscriber_id, purpose=TRACKING_PURPOSE
        )
        .order_by("-at", "-id")
        .values_list("action", flat=True)
        .first()
    )
    return last in (ConsentRecord.Action.GRANT, ConsentRecord.Action.CONFIRM)
