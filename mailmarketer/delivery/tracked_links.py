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

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.links import click_token, click_url_prefix, open_token, open_url_prefix
from mailmarketer.campaigns.models import Campaign, CampaignLink

# An <a ...href="..."> with a double-quoted value (what the sanitiser writes).
_ANCHOR_HREF = re.compile(r'(<a\s[^>]*?\bhref=")([^"]*)(")', re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)
# What may follow a URL in text (the link finder strips trailing punctuation the same way).
_TEXT_END = r"(?=[.,;:!?)\]}'\"]*(?:\s|$|<|>))"


class LinkTracker:
    def __init__(self, links: dict[str, int]):
        self.links = links  # stored URL -> CampaignLink id
        self.prefix = click_url_prefix()
        self.open_prefix = open_url_prefix()
        # Longest first, so that a URL that begins another one never takes its place.
        alternatives = "|".join(re.escape(url) for url in sorted(links, key=len, reverse=True))
        self._text_url = re.compile(f"(?:{alternatives}){_TEXT_END}") if links else None

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
        """This recipient's parts with their links tracked and the pixel in the HTML."""
        tokens: dict[int, str] = {}

        def tracked(link_id: int) -> str:
            found = tokens.get(link_id)
            if found is None:
                found = tokens[link_id] = self.prefix + click_token(delivery_id, link_id)
            return found

        if html is not None:
            if self.links:

                def href(match: re.Match) -> str:
                    link_id = self.links.get(html_lib.unescape(match.group(2)))
                    if link_id is None:
                        return match.group(0)
                    return match.group(1) + tracked(link_id) + match.group(3)

                html = _ANCHOR_HREF.sub(href, html)
            html = _with_pixel(html, self.open_prefix + open_token(delivery_id))
        if self._text_url is not None:
            text = self._text_url.sub(lambda m: tracked(self.links[m.group(0)]), text)
        return html, text


def _with_pixel(html: str, src: str) -> str:
    pixel = f'<img src="{src}" width="1" height="1" alt="" border="0">'
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + pixel
    at = ends[-1].start()
    return html[:at] + pixel + html[at:]
