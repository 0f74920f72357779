from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.delivery.bounces import testing
from mailmarketer.delivery.bounces.classify import HARD, SOFT, classify, severity

CORPUS = Path(__file__).parent / "corpus"


def _expected():
    for line in (CORPUS / "EXPECTED").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind, address = [*line.split("\t"), "", ""][:3]
            yield name, kind, address


def test_it_classifies_the_corpus_of_real_shaped_reports_at_least_98_percent_right():
    cases = list(_expected())
    misses = []
    for name, kind, address in cases:
        found = classify((CORPUS / name).read_bytes())
        if found.kind != kind or found.address.lower() != address.lower():
            misses.append(
                f"{name}: expected {kind} {address!r}, got {found.kind} "
                f"{found.address!r} ({found.reason})"
            )
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == {name for name, _, _ in cases}, "every corpus file has an expected line"
    assert len(cases) >= 30
    print(f"corpus: {len(cases) - len(misses)}/{len(cases)} right")
    for miss in misses:
        print("MISS", miss)
    assert (len(cases) - len(misses)) / len(cases) >= 0.98, "\n".join(misses)


def test_it_covers_every_system_the_issue_names():
    names = " ".join(name for name, _, _ in _expected())
    for system in (
        "postfix",
        "exim",
        "sendmail",
        "exchange",
        "gmail",
        "yahoo",
        "outlook-com",
        "vacation",
        "arf-yahoo",
        "arf-microsoft",
    ):
        assert system in names


def test_it_finds_the_verp_token_and_our_message_id_in_a_dsn():
    found = classify((CORPUS / "postfix-user-unknown.eml").read_bytes())
    assert found.tokens[0] == "1042-k3tcnrsgm4ytqmzq"
    assert found.message_ids[0] == (1042, "5e0d3b2f8c1a4d6e9b7f0a1c2d3e4f50")


def test_it_tells_the_address_problems_from_the_passing_ones():
    assert severity("5.1.1", "") == HARD
    assert severity("5.2.1", "account disabled") == HARD
    assert severity("5.2.2", "mailbox full") == SOFT
    assert severity("5.7.1", "user unknown, or spam") == SOFT
    assert severity("4.1.1", "try later") == SOFT
    assert severity("5.1.7", "bad sender address") == SOFT  # about our sender, not the person
    assert severity("", "550 no such user here") == HARD
    assert severity("", "552 mailbox over quota") == SOFT


def test_it_ignores_an_auto_submitted_reply_but_not_a_daemons_bounce_that_says_the_same():
    vacation = (
        b"From: ann@example.org\r\nAuto-Submitted: auto-replied\r\nSubject: Away\r\n\r\nback soon"
    )
    assert classify(vacation).kind == "auto_reply"
    bounce = testing.dsn("ann@example.org", token="1-abc")
    assert classify(bounce).kind == HARD


def test_it_survives_deep_nesting_and_garbage():
    nested = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" * 5000
    )
    assert classify(nested).kind == "unknown"
    assert classify(b"\x00\xff" * 1000).kind == "unknown"
    assert classify(b"").kind == "unknown"
    bad_charset = b"From: x@y\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe"
    assert classify(bad_charset).kind == "unknown"


_header_names = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Content-Type",
        "Auto-Submitted",
        "X-Failed-Recipients",
        "Final-Recipient",
        "Action",
        "Status",
        "Diagnostic-Code",
        "Feedback-Type",
        "Original-Rcpt-To",
        "Content-Transfer-Encoding",
    ]
)
_values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "multipart/report; report-type=delivery-status; boundary=x",
            "multipart/report; report-type=feedback-report; boundary=x",
            "message/delivery-status",
            "message/feedback-report",
            "failed",
            "5.1.1",
            "rfc822; a@b.c",
            "base64",
            "quoted-printable",
            "auto-replied",
        ]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    headers=st.lists(st.tuples(_header_names, _values), max_size=12),
    body=st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode)),
    parts=st.integers(min_value=0, max_value=4),
)
def test_it_never_crashes_on_fuzzed_reports(headers, body, parts):
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("utf-8", "replace")
    nested = b"".join(
        b"--x\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.c\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        for _ in range(parts)
    )
    found = classify(head + b"\r\n" + nested + body)
    assert found.kind in ("hard", "soft", "complaint", "auto_reply", "delayed", "unknown")


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=4000))
def test_it_never_crashes_on_random_bytes(raw):
    classify(raw)


# -- the fast path for DSNs (classify._fast_dsn) gives the full parser's answer ---------------


def test_the_fast_path_gives_the_full_parsers_answer_on_the_whole_corpus():
    from mailmarketer.delivery.bounces.classify import _fast_dsn

    fast = 0
    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        assert classify(raw) == classify(raw, fast=False), path.name
        fast += _fast_dsn(raw) is not None
    assert fast >= 5  # the standard DSNs of the corpus take it


_NL = st.sampled_from(["\n", "\r\n", "\r"])
_PART = st.sampled_from(
    [
        "Content-Type: text/plain\n\nThe mail system\n\n--{b}x is not a delimiter\n",
        "Content-Type: message/rfc822\n\nContent-Type: message/delivery-status\n\n"
        "Final-Recipient: rfc822; inner@b.c\nAction: failed\nStatus: 5.1.1\n",
        "Content-Type: multipart/mixed; boundary=in\n\n--in\nContent-Type: "
        "message/delivery-status\n\nFinal-Recipient: rfc822; nested@b.c\nAction: failed\n"
        "Status: 5.1.1\n--in--\n",
        "Content-Type: text/rfc822-headers\n\nTo: bounces+tok@b.c\nSubject: hi\n",
        "\n",
        "",
        "garbage line\nContent-Type: message/delivery-status\n\n",
    ]
)
_BLOCK_LINE = st.sampled_from(
    [
        "Reporting-MTA: dns; mx.b.c",
        "Final-Recipient: rfc822; ann@b.c",
        "Final-Recipient: bob@b.c",
        "Original-Recipient: rfc822;carl@b.c",
        "Action: failed",
        "Action: delayed",
        "Action: Delivered",
        "Status: 5.1.1",
        "Status: 4.2.2",
        "Status: 5.7.1",
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown",
        "Diagnostic-Code: smtp; 552 mailbox full",
        "  continued words",
        "",
        " ",
        "no colon here",
        "From somebody",
        "X-Odd:",
    ]
)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    boundary=st.sampled_from(["B1", "=_x.y", "a b", "simple", "-"]),
    quoted=st.booleans(),
    nl=_NL,
    before=st.lists(_PART, max_size=3),
    report_type=st.sampled_from(
        ["message/delivery-status", "Message/Delivery-Status", "message/global-delivery-status"]
    ),
    block=st.lists(_BLOCK_LINE, max_size=14),
    after=st.lists(_PART, max_size=2),
    repeat=st.booleans(),
    close=st.sampled_from(["--{b}--\n", "--{b}-- \t\n", "--{b}--", "", "--{b}\n--{b}--\n"]),
    preamble=st.sampled_from(["", "This is a MIME report.\n", "--{b}x\n"]),
)
def test_the_fast_path_gives_the_full_parsers_answer_on_fuzzed_dsns(
    boundary, quoted, nl, before, report_type, block, after, repeat, close, preamble
):
    def lines(text):
        return text.format(b=boundary).replace("\n", nl)

    param = f'"{boundary}"' if quoted or " " in boundary else boundary
    delimiter = f"--{boundary}\n" * (2 if repeat else 1)
    parts = [*before, f"Content-Type: {report_type}\n\n" + "\n".join(block) + "\n", *after]
    text = (
        "From: MAILER-DAEMON@b.c\nSubject: Undelivered\n"
        f"Content-Type: multipart/report; report-type=delivery-status; boundary={param}\n\n"
        + preamble
        + "".join(delimiter + part for part in parts)
        + close
    )
    raw = lines(text).encode()
    assert classify(raw) == classify(raw, fast=False)
