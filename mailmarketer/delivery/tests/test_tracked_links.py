"""Where the open pixel goes (tracked_links._with_pixel), against the regular expression it
replaces on the send path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailmarketer.delivery.tracked_links import _BODY_END, _with_pixel

PIXEL = '<img src="P" width="1" height="1" alt="" border="0">'


def expected(html: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + PIXEL
    at = ends[-1].start()
    return html[:at] + PIXEL + html[at:]


def test_the_pixel_goes_before_the_last_body_end_of_any_case():
    assert _with_pixel("<body>a</body></html>", "P") == f"<body>a{PIXEL}</body></html>"
    assert _with_pixel("<p>a</p></BODY  >\n</HTML>", "P") == f"<p>a</p>{PIXEL}</BODY  >\n</HTML>"
    html = "<body>" + "<b>x</b>" * 40 + "</body>"  # more closing tags after than it looks at
    assert _with_pixel(html + "</i>" * 30, "P") == html[:-7] + PIXEL + "</body>" + "</i>" * 30
    assert _with_pixel("</body>a</body >b", "P") == f"</body>a{PIXEL}</body >b"


def test_without_a_body_end_the_pixel_goes_last():
    assert _with_pixel("<p>hi</p></bod>", "P") == "<p>hi</p></bod>" + PIXEL


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["</body>", "</BODY >", "</b>", "</", "<", "x", "</bodyx>"])))
def test_it_agrees_with_the_expression_everywhere(pieces):
    html = "".join(pieces)
    assert _with_pixel(html, "P") == expected(html)
