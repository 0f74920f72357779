"""Tracked links and the open pixel, put into each recipient's rendered message.

Built once per campaign (per worker) by `LinkTracker.for_campaign`, from the links stored when
the campaign was compiled (campaigns.models.CampaignLink): an `<a href>` whose URL is one of them
becomes `/t/c/<ledger id>.<link id>.<signature>` (audience/links.py), the same URL in the text
part too, and the HTML part gets a 1x1 image `/t/o/<ledger id>.<signature>` before `</body>`.
Links not stored (those holding a template expression, the unsubscribe and manage links) are
left alone: the redirect can only ever go to a stored URL.

Cheap on purpose: per recipient it is one regular-expression pass over each part with a dict
lookup per link found, and one HMAC per link (no Jinja work, nothing per link at render time).
A campaign whose tracking mode is off, and a transactional message, get no tracker.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.links import click_token, click_url_prefix, open_token, open_url_prefix
from mailmarketer.campaigns.models import Campaign, CampaignLink

# An <a ...href="..."> with a double-quoted value (what the sanitiser writes).
ANCHOR_HREF = re.compile(r'(<a\s[^>]*?\bhref=")([^"]*)(")', re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)
# What may follow a URL in text (the link finder strips trailing punctuation the same way).
_UNKNOWN = object()
TEXT_PUNCTUATION = r"[.,;:!?)\]}'\"]"
_TEXT_END = rf"(?={TEXT_PUNCTUATION}*(?:\s|$|<|>))"


class LinkTracker:
    def __init__(self, links: dict[str, int]):
        self.links = links  # stored URL -> CampaignLink id
        self.prefix = click_url_prefix()
        self.open_prefix = open_url_prefix()
        # Longest first, so that a URL that begins another one never takes its place.
        alternatives = "|".join(re.escape(url) for url in sorted(links, key=len, reverse=True))
        self._text_url = re.compile(f"(?:{alternatives}){_TEXT_END}") if links else None
        # An anchor's opening up to its href's closing quote, as written -> its stored link id
        # or None: the same anchors come in every message of a campaign.
        self._anchors: dict[str, int | None] = {}

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> LinkTracker | None:
        if campaign.kind == Campaign.Kind.TRANSACTIONAL:
            return None
        if campaign.effective_tracking_mode == TrackingMode.OFF:
            return None
        links = dict(
            CampaignLink.objects.filter(campaign=campaign)
            .order_by("position")
            .values_list("url", "id")
        )
        return cls(links)

    def apply(self, delivery_id: int, html: str | None, text: str) -> tuple[str | None, str]:
        """This recipient's parts with their links tracked and the pixel in the HTML.

        Per match only a dict lookup: a campaign's messages hold the same anchors and URLs (a
        5 KB body tracks ~50 of them), so what each anchor as written becomes is worked out
        once per campaign (self._anchors: its stored link, or None), and its tracked form once
        per message (`done`, keyed by the match)."""
        return self.apply_with(
            html,
            text,
            lambda link_id: self.prefix + click_token(delivery_id, link_id),
            lambda: self.open_prefix + open_token(delivery_id),
        )

    def apply_with(
        self,
        html: str | None,
        text: str,
        tracked: Callable[[int], str],
        pixel: Callable[[], str],
    ) -> tuple[str | None, str]:
        """apply() with the tracked URL of a link id and the pixel's URL given by the caller
        (delivery/prebuilt.py puts markers there, once per campaign)."""
        done: dict[str, str] = {}
        links = self.links

        if html is not None:
            if links:
                known = self._anchors
                if len(known) > 4096:
                    known.clear()  # per-recipient URLs (an offer per person) never repeat

                def href(match: re.Match) -> str:
                    whole = match.group(0)
                    found = done.get(whole)
                    if found is not None:
                        return found
                    link = known.get(whole, _UNKNOWN)
                    if link is _UNKNOWN:
                        link = known[whole] = links.get(html_lib.unescape(match.group(2)))
                    if link is None:
                        found = whole
                    else:
                        url = done.get(link) or done.setdefault(link, tracked(link))
                        found = match.group(1) + url + match.group(3)
                    done[whole] = found
                    return found

                html = ANCHOR_HREF.sub(href, html)
            html = _with_pixel(html, pixel())
        if self._text_url is not None:

            def text_url(match: re.Match) -> str:
                url = match.group(0)
                found = done.get(url)
                if found is None:
                    link = links[url]
                    found = done[url] = done.get(link) or done.setdefault(link, tracked(link))
                return found

            text = self._text_url.sub(text_url, text)
        return html, text


def _last_body_end(html: str) -> int:
    """Where the last `</body>` (any case, spaces before `>`) starts, or -1. Looks back from
    the end over the last few `</` (the body's end is near the end of a message: a couple of
    steps) instead of running the expression over the whole part; past 16 of them it asks the
    expression."""
    at = len(html)
    for _ in range(16):
        at = html.rfind("</", 0, at)
        if at < 0:
            return -1
        if _BODY_END.match(html, at):
            return at
    ends = list(_BODY_END.finditer(html, 0, at))
    return ends[-1].start() if ends else -1


def _with_pixel(html: str, src: str) -> str:
    pixel = f'<img src="{src}" width="1" height="1" alt="" border="0">'
    at = _last_body_end(html)
    if at < 0:
        return html + pixel
    return html[:at] + pixel + html[at:]
