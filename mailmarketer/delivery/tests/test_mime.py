"""Campaign messages built as bytes, read back with Python's own parser under policy.strict."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailmarketer.delivery.mime import (
    HeaderInjection,
    MessageParts,
    SmtpUtf8Required,
    build_message,
    encode_body,
    make_message_id,
    verp_address,
    verp_token,
)

CAMPAIGN = uuid.UUID("12345678-1234-5678-1234-567812345678")
DATE = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def parts(**kwargs) -> MessageParts:
    values = {
        "from_email": "news@acme.example",
        "from_name": "Acme News",
        "reply_to": "help@acme.example",
        "list_id": "42.lists.acme.example",
        "list_name": "Acme Weekly",
        "feedback_id": "c42:w1:marketing:mm",
        "message_id_domain": "acme.example",
    }
    values.update(kwargs)
    return MessageParts(**values)


def build(p: MessageParts | None = None, **kwargs) -> bytes:
    values = {
        "to_email": "ann@example.org",
        "to_name": "Ann Smith",
        "subject": "Spring news",
        "html": "<p>Hello <b>Ann</b></p>",
        "text": "Hello Ann",
        "message_id": make_message_id(7, CAMPAIGN, "acme.example"),
        "date": DATE,
        "list_unsubscribe_url": "https://acme.example/f/u/tok.sig",
        "list_unsubscribe_mailto": "mailto:unsubscribe+tok@acme.example",
    }
    values.update(kwargs)
    return build_message(p or parts(), **values)


def parse_strict(data: bytes) -> email.message.EmailMessage:
    """Parse with policy.strict (any defect raises) and check every header of every part."""
    message = email.message_from_bytes(data, policy=email.policy.strict)
    for part in message.walk():
        assert part.defects == []
        for name, value in part.items():
            assert value.defects == (), (name, value.defects)
    for line in data.split(b"\r\n"):
        assert len(line) <= 998
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
    return message


def body_of(message, subtype: str) -> str:
    content = message.get_body(preferencelist=(subtype,)).get_content()
    return content.replace("\r\n", "\n")


def normalised(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def test_it_builds_a_multipart_alternative_message_with_every_list_header():
    message = parse_strict(build())

    assert message["From"] == "Acme News <news@acme.example>"
    assert message["To"] == "Ann Smith <ann@example.org>"
    assert message["Subject"] == "Spring news"
    assert message["Date"].datetime == DATE
    assert message["Message-ID"] == f"<7.{CAMPAIGN.hex}@acme.example>"
    assert message["Reply-To"] == "help@acme.example"
    assert message["List-Id"] == "Acme Weekly <42.lists.acme.example>"
    assert message["List-Unsubscribe"] == (
        "<https://acme.example/f/u/tok.sig>, <mailto:unsubscribe+tok@acme.example>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == "c42:w1:marketing:mm"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert body_of(message, "plain") == "Hello Ann\n"
    assert body_of(message, "html") == "<p>Hello <b>Ann</b></p>\n"
    assert "Return-Path" not in message  # the envelope carries it (RFC 5321 4.4)


def test_it_builds_a_plain_text_message_without_html_or_list_headers():
    message = parse_strict(
        build(
            parts(list_id="", feedback_id="", reply_to=""),
            html=None,
            list_unsubscribe_url=None,
            list_unsubscribe_mailto=None,
            return_path="bounces+x@acme.example",
        )
    )
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == "Hello Ann\n"
    for absent in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Reply-To"):
        assert absent not in message
    assert message["Return-Path"] == "<bounces+x@acme.example>"


def test_it_round_trips_attachments_inside_multipart_mixed():
    pdf = bytes(range(256)) * 40
    p = parts(
        attachments=[
            ("prices.pdf", "application/pdf", pdf),
            ("café menu ☕.txt", "text/plain", "Crème brûlée\n".encode()),
        ]
    )
    message = parse_strict(build(p))

    assert message.get_content_type() == "multipart/mixed"
    alternative, *attachments = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [a.get_filename() for a in attachments] == ["prices.pdf", "café menu ☕.txt"]
    assert attachments[0].get_content() == pdf
    assert attachments[1].get_payload(decode=True) == "Crème brûlée\n".encode()
    assert all(a.get_content_disposition() == "attachment" for a in attachments)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Plain ASCII, short lines.\nTwo of them.", "7bit"),
        (
            "Grüße aus Köln — see you at the spring meetup next week, bring a friend!",
            "quoted-printable",
        ),
        ("Grüße aus Köln, à bientôt, ¡hola!", "base64"),  # over a sixth of the bytes non-ASCII
        ("Привет, это рассылка. Спасибо за подписку!", "base64"),
        ("会员专享：春季促销开始了", "base64"),
        ("x" * 2000, "quoted-printable"),  # ASCII, but a line over 998 octets
        ("trailing spaces   \nand\ttabs\t\n", "7bit"),
    ],
)
def test_it_picks_a_seven_bit_transfer_encoding_that_round_trips(text, encoding):
    message = parse_strict(build(text=text, html=f"<p>{text}</p>"))

    plain = message.get_body(preferencelist=("plain",))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert body_of(message, "plain") == normalised(text)
    assert body_of(message, "html") == normalised(f"<p>{text}</p>")


def test_it_never_puts_eight_bit_data_on_the_wire():
    data = build(text="Grüße 😀", html="<p>会员专享</p>", subject="Grüße 😀", to_name="Zoë")
    assert data.isascii()


def test_it_encodes_non_ascii_names_and_subjects_and_punycodes_idn_domains():
    message = parse_strict(
        build(
            parts(from_name="Société Générale ✉"),
            to_email="anna@bücher.example",
            to_name="Anna Müller 👩‍💻",
            subject="Ihre Bestätigung 🎉",
        )
    )
    assert message["From"].addresses[0].display_name == "Société Générale ✉"
    to = message["To"].addresses[0]
    assert to.display_name == "Anna Müller 👩‍💻"
    assert to.addr_spec == "anna@xn--bcher-kva.example"
    assert message["Subject"] == "Ihre Bestätigung 🎉"


def test_it_quotes_display_names_with_specials():
    message = parse_strict(build(to_name='Smith, "Ann" Q. \\o/', to_email="a.b+c@example.org"))
    assert message["To"].addresses[0].display_name == 'Smith, "Ann" Q. \\o/'
    assert message["To"].addresses[0].addr_spec == "a.b+c@example.org"


def test_it_refuses_a_non_ascii_local_part_as_needing_smtputf8():
    with pytest.raises(SmtpUtf8Required, match="SMTPUTF8"):
        build(to_email="jürgen@example.de")


names = st.text(
    st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=120
)


def display_name(message, header: str) -> str:
    """The display name of a one-address header, decoded as RFC 2047 section 6.2 says: the
    whitespace between two encoded words is not part of the text. CPython's address parser
    keeps it (a long non-ASCII name comes back with a space at each encoded-word boundary, in
    Python's own round trip too), so encoded words are decoded with the legacy decoder, which
    follows the RFC; the parse itself stays under policy.strict."""
    raw = next(value for name, value in message.raw_items() if name == header)
    phrase = raw.rpartition(" <")[0] if raw.endswith(">") else ""
    if "=?" in phrase:
        return str(make_header(decode_header(phrase)))
    return message[header].addresses[0].display_name


@settings(max_examples=300, deadline=None)
@given(to_name=names, subject=names, from_name=names)
def test_it_decodes_any_name_and_subject_back_to_what_was_given(to_name, subject, from_name):
    message = parse_strict(build(parts(from_name=from_name), to_name=to_name, subject=subject))

    assert message["Subject"] == cleaned(subject)
    assert display_name(message, "To") == cleaned(to_name)
    assert message["To"].addresses[0].addr_spec == "ann@example.org"
    assert display_name(message, "From") == cleaned(from_name)


def cleaned(value: str) -> str:
    """What a header keeps of a value: control characters count as spaces, each run of
    whitespace becomes one space."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", value).split())


@settings(max_examples=50, deadline=None)
@given(words=st.lists(st.text("abcdefghij", min_size=1, max_size=30), min_size=20, max_size=80))
def test_it_folds_long_ascii_subjects_at_spaces(words):
    subject = " ".join(words)
    data = build(subject=subject)
    message = parse_strict(data)

    assert message["Subject"] == subject
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" not in head.split(b"Subject:", 1)[1].split(b"\r\nDate:")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


bodies = st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000)


@settings(max_examples=150, deadline=None)
@given(text=bodies, html=bodies)
def test_it_round_trips_any_body(text, html):
    message = parse_strict(build(text=text, html=html))
    assert body_of(message, "plain") == normalised(text)
    assert body_of(message, "html") == normalised(html)


INJECTIONS = ["a\r\nBcc: victim@example.org", "a\nX-Evil: 1", "a\rb", "a\x00b"]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize(
    "field",
    [
        "to_name",
        "to_email",
        "subject",
        "message_id",
        "list_unsubscribe_url",
        "list_unsubscribe_mailto",
        "return_path",
    ],
)
def test_it_refuses_cr_lf_or_nul_in_any_recipient_field(field, payload):
    with pytest.raises(HeaderInjection, match="CR, LF and NUL"):
        build(**{field: payload})


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize(
    "field",
    [
        "from_name",
        "from_email",
        "reply_to",
        "list_id",
        "list_name",
        "feedback_id",
        "extra_name",
        "extra_value",
        "filename",
        "content_type",
    ],
)
def test_it_refuses_cr_lf_or_nul_in_any_campaign_field(field, payload):
    if field.startswith("extra_"):
        header = (payload, "v") if field == "extra_name" else ("X-Tag", payload)
        kwargs = {"extra_headers": [header]}
    elif field == "filename":
        kwargs = {"attachments": [(payload, "text/plain", b"x")]}
    elif field == "content_type":
        kwargs = {"attachments": [("a.txt", payload, b"x")]}
    else:
        kwargs = {field: payload}
    with pytest.raises(HeaderInjection, match="CR, LF and NUL"):
        parts(**kwargs)


@pytest.mark.parametrize("name", ["Bcc", "subject", "DKIM-Signature", "Content-Type", "To"])
def test_it_refuses_extra_headers_that_would_replace_ours(name):
    with pytest.raises(HeaderInjection, match="would replace"):
        parts(extra_headers=[(name, "x")])


def test_it_writes_extra_headers_folded_and_encoded():
    long_value = " ".join(["segment"] * 30)
    p = parts(extra_headers=[("X-Campaign-Tag", "printemps été"), ("X-Long", long_value)])
    message = parse_strict(build(p))
    assert message["X-Campaign-Tag"] == "printemps été"
    assert message["X-Long"] == long_value


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"date": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"message_id": "no-angle@acme.example"}, "Message-ID"),
        ({"list_unsubscribe_url": "javascript:alert(1)"}, "http"),
        ({"list_unsubscribe_url": "https://acme.example/u?a b"}, "http"),
        ({"list_unsubscribe_mailto": "https://x.example"}, "mailto"),
        ({"to_email": "not-an-address"}, "not an email address"),
        ({"to_email": "a@exa mple.org"}, "not a valid domain"),
        ({"list_unsubscribe_url": None}, "mailto: without"),
    ],
)
def test_it_refuses_bad_recipient_values_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_it_keeps_the_date_s_offset():
    cet = timezone(timedelta(hours=1))
    message = parse_strict(build(date=DATE.astimezone(cet)))
    assert str(message["Date"]).endswith("+0100")
    assert message["Date"].datetime == DATE


def test_it_makes_message_ids_stable_per_row_and_distinct_across_rows():
    first = make_message_id(41, CAMPAIGN, "acme.example")
    assert first == make_message_id(41, str(CAMPAIGN), "acme.example")
    assert first != make_message_id(42, CAMPAIGN, "acme.example")
    assert first != make_message_id(41, uuid.uuid4(), "acme.example")
    assert make_message_id(1, CAMPAIGN, "bücher.example").endswith("@xn--bcher-kva.example>")
    with pytest.raises(ValueError, match="UUID"):
        make_message_id(1, "nope", "acme.example")


def test_it_makes_verp_addresses_that_give_their_token_back():
    address = verp_address("bounces", "acme.example", "d42.Xy_z-9=")
    assert address == "bounces+d42.Xy_z-9=@acme.example"
    assert verp_token(address, "bounces", "acme.example") == "d42.Xy_z-9="
    assert verp_token("<BOUNCES+abc@ACME.example>", "bounces", "acme.example") == "abc"
    assert verp_token("bounces+abc@other.example", "bounces", "acme.example") is None
    assert verp_token("someone@acme.example", "bounces", "acme.example") is None
    with pytest.raises(ValueError, match="64"):
        verp_address("bounces", "acme.example", "x" * 60)
    with pytest.raises(ValueError, match="VERP token"):
        verp_address("bounces", "acme.example", "a@b")


def test_it_encodes_bodies_by_content():
    assert encode_body(b"ascii\r\n")[0] == "7bit"
    assert encode_body("é in mostly ascii text\r\n".encode())[0] == "quoted-printable"
    assert encode_body("ééééé\r\n".encode())[0] == "base64"


def _has_bare_cr_or_lf(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    return data.count(b"\n") != crlf or data.count(b"\r") != crlf


# Bodies with every kind of line break and dots at line starts (what SMTP smuggling needs).
breaky = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", ".", "a", "é", "字", " ", "\x00", "=", "\u2028"]),
    max_size=400,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    text=breaky,
    html=breaky | st.none(),
    subject=breaky.map(lambda s: s.replace("\r", "").replace("\n", "").replace("\x00", "")),
)
def test_what_it_builds_has_crlf_line_ends_only_so_the_client_may_skip_its_scan(
    text, html, subject
):
    from mailmarketer.delivery.mime import CrlfMessage
    from mailmarketer.delivery.smtp import prepare_data

    message = build(text=text, html=html, subject=subject)
    assert type(message) is CrlfMessage
    assert not _has_bare_cr_or_lf(bytes(message))
    # The client's fast path gives the same DATA as its full check of the plain bytes.
    assert prepare_data(message) == prepare_data(bytes(message))


def test_attachments_keep_crlf_line_ends_only():
    p = parts(attachments=[("a.txt", "text/plain", b"one\ntwo\rthree\r\n" * 50)])
    assert not _has_bare_cr_or_lf(bytes(build(p, text="x\ny\rz")))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.one_of(st.integers(0, 1100), st.sampled_from([996, 997, 998, 999, 1000])), max_size=8
    ),
    tail=st.booleans(),
    bare=st.sampled_from([b"", b"\r", b"\n"]),
)
def test_the_long_line_check_agrees_with_splitting_every_line(lines, tail, bare):
    from mailmarketer.delivery.mime import MAX_LINE, has_long_line

    data = b"\r\n".join(b"x" * n + bare for n in lines) + (b"\r\n" if tail else b"")
    expected = max(map(len, data.split(b"\r\n"))) > MAX_LINE
    assert has_long_line(data) is expected


def test_the_date_header_follows_the_date_given():
    first = build(date=DATE)
    later = build(date=DATE + timedelta(seconds=1))
    other_zone = build(date=DATE.astimezone(timezone(timedelta(hours=2))))
    assert b"Date: Fri, 14 Mar 2025 09:26:53 +0000\r\n" in first
    assert b"Date: Fri, 14 Mar 2025 09:26:54 +0000\r\n" in later
    assert b"Date: Fri, 14 Mar 2025 11:26:53 +0200\r\n" in other_zone


def test_the_date_header_is_made_again_for_anything_it_shows():
    # The header is kept for the second it shows: a date that differs only in its year, its
    # zone or its fold (the repeated hour when clocks go back) is another header.
    from zoneinfo import ZoneInfo

    plus_two = timezone(timedelta(hours=2))
    assert b"Date: Fri, 14 Mar 2025 09:26:53 +0000\r\n" in build(date=DATE)
    assert b"Date: Sat, 14 Mar 2026 09:26:53 +0000\r\n" in build(date=DATE.replace(year=2026))
    assert b"Date: Fri, 14 Mar 2025 09:26:53 +0200\r\n" in build(date=DATE.replace(tzinfo=plus_two))
    oslo = datetime(2025, 10, 26, 2, 30, 0, tzinfo=ZoneInfo("Europe/Oslo"))
    assert b"Date: Sun, 26 Oct 2025 02:30:00 +0200\r\n" in build(date=oslo)
    assert b"Date: Sun, 26 Oct 2025 02:30:00 +0100\r\n" in build(date=oslo.replace(fold=1))
    assert b"Date: Sun, 26 Oct 2025 02:30:00 +0200\r\n" in build(date=oslo)
