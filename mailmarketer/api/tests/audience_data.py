"""Lists and people for the audience API tests, made through the audience actions (as staff
would), so that the API is tested against data it did not write itself."""

from __future__ import annotations

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions
from mailmarketer.audience.actions import ConsentSource, Reason

SETUP = Actor.system("test setup")


def make_list(workspace, slug: str, *, optin: str = "single", name: str | None = None):
    return actions.do_create_list(
        workspace, name=name or slug.title(), slug=slug, optin=optin, actor=SETUP
    )


def make_person(
    workspace,
    email: str,
    *,
    name: str = "",
    attributes: dict | None = None,
    lists=(),
    ip: str | None = None,
):
    """A subscriber, subscribed to `lists` through a form with a notice (and an IP)."""
    subscriber = actions.do_create_subscriber(
        workspace, email=email, name=name, attributes=attributes, actor=SETUP
    )
    if lists:
        notice = actions.notice_for_text(workspace, "Sign-up form", "Yes, send me the news.")
        source = ConsentSource("form", "1", "Sign-up form", ip=ip, user_agent="TestBrowser/1.0")
        actions.do_subscribe(
            subscriber,
            list(lists),
            actor=SETUP,
            reason=Reason.BY_SUBSCRIBER,
            source=source,
            notice=notice,
        )
    return subscriber
