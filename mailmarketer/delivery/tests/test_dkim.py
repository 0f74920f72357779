"""DKIM signatures made here, verified by dkimpy (an independent implementation)."""

from __future__ import annotations

import base64
import dataclasses
import re
import uuid
from datetime import UTC, datetime

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from mailmarketer.delivery import dkim as dkim_module
from mailmarketer.delivery.dkim import DkimSigner, dns_record, generate_key, relaxed_body, verify
from mailmarketer.delivery.mime import MessageParts, build_message, make_message_id

DOMAIN = "acme.example"
SELECTOR = "mm2025"


@pytest.fixture(scope="module")
def key():
    return generate_key()


@pytest.fixture(scope="module")
def signer(key):
    return DkimSigner(DOMAIN, SELECTOR, key[0])


def dkimpy_verify(message: bytes, public_b64: str) -> bool:
    """dkimpy's own verify(), with a DNS lookup answered from our record."""
    name, value = dns_record(SELECTOR, DOMAIN, public_b64)

    def dnsfunc(query, timeout=5):
        assert query.decode().rstrip(".") == name
        return value.encode()

    return dkimpy.verify(message, dnsfunc=dnsfunc)


def campaign_message(signer: DkimSigner, **kwargs) -> bytes:
    parts = MessageParts(
        from_email="news@acme.example",
        from_name="Acme News",
        reply_to="help@acme.example",
        list_id="42.lists.acme.example",
        feedback_id="c42:w1:marketing:mm",
        dkim=signer,
    )
    values = {
        "to_email": "ann@example.org",
        "to_name": "Ann Smith",
        "subject": "Spring news",
        "html": "<table>\n  <tr><td>Hello   Ann</td></tr>\n</table>\n",
        "text": "Hello Ann\n\n\n",
        "message_id": make_message_id(7, uuid.uuid4(), DOMAIN),
        "date": datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
        "list_unsubscribe_url": "https://acme.example/f/u/tok.sig",
    }
    values.update(kwargs)
    return build_message(parts, **values)


def test_it_generates_a_key_and_the_txt_record_to_publish(key):
    private_pem, public_b64 = key
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    public = serialization.load_der_public_key(base64.b64decode(public_b64))
    assert public.key_size == 2048
    assert dns_record("MM2025", "Bücher.example", public_b64) == (
        "mm2025._domainkey.xn--bcher-kva.example",
        f"v=DKIM1; k=rsa; p={public_b64}",
    )


def test_it_signs_campaign_messages_that_dkimpy_verifies(key, signer):
    message = campaign_message(signer)

    assert message.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert dkimpy_verify(message, key[1])
    assert verify(message, key[1], selector=SELECTOR, domain=DOMAIN)


def test_it_signs_the_headers_that_matter(signer):
    message = campaign_message(signer)
    header = message.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0]
    signed = re.search(rb"h=([^;]*);", header)[1].replace(b"\r\n", b"").replace(b" ", b"")
    names = set(signed.decode().split(":"))
    assert names >= {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "reply-to",
        "list-id",
        "feedback-id",
        "mime-version",
        "content-type",
    }


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: Spring news", b"Subject: Spring newz"),
        (b"To: Ann Smith <ann@", b"To: Ann Smith <bob@"),
        (b"f/u/tok.sig", b"f/u/tok.sIg"),  # the unsubscribe link
        (b"Hello   Ann</td>", b"Hello   Bob</td>"),  # the body
        (b"\r\nMIME-Version", b"\r\nSubject: a second subject\r\nMIME-Version"),  # over-signed
        (b"\r\nMIME-Version", b"\r\nFrom: evil@evil.example\r\nMIME-Version"),
    ],
)
def test_it_makes_any_change_to_what_is_signed_fail_verification(key, signer, old, new):
    message = campaign_message(signer)
    assert old in message
    assert not dkimpy_verify(message.replace(old, new, 1), key[1])


def test_it_survives_what_relaxed_canonicalisation_allows(key, signer):
    message = campaign_message(signer)
    refolded = message.replace(b"Subject: Spring news", b"Subject:   Spring\r\n\t news  ")
    trailing = message + b"\r\n\r\n"
    assert dkimpy_verify(refolded, key[1])
    assert dkimpy_verify(trailing, key[1])


def test_one_signer_signs_a_whole_campaign_and_other_campaigns_verifiably(key):
    # The signer remembers the canonical form of the fields messages share (From,
    # Content-Type...); what it remembers must never stand in for a field that differs.
    signer = DkimSigner(DOMAIN, SELECTOR, key[0])
    first = campaign_message(signer, to_email="ann@example.org")
    second = campaign_message(signer, to_email="bob@example.org", subject="Spring  news\tagain")
    other_parts = MessageParts(
        from_email="offers@acme.example", from_name="Acme  Offers", dkim=signer
    )
    other = build_message(
        other_parts,
        to_email="cy@example.org",
        to_name="Cy",
        subject="Offers",
        html=None,
        text="Hello\t\tCy   \n\n\n",
        message_id=make_message_id(8, uuid.uuid4(), DOMAIN),
        date=datetime(2025, 3, 14, 9, 26, 54, tzinfo=UTC),
        list_unsubscribe_url="https://acme.example/f/u/tok2.sig",
    )
    again = campaign_message(signer, to_email="dee@example.org")
    for message in (first, second, other, again):
        assert dkimpy_verify(message, key[1])
    assert b"Acme  Offers" not in other  # collapsed when built; the signer saw the built form


@pytest.mark.parametrize("run", [2, 3, 4, 5, 7, 8, 9, 16, 33, 1000])
def test_it_collapses_whitespace_runs_of_any_length_as_dkimpy_does(run):
    for space in (b" ", b"\t", b" \t"):
        body = b"a" + space * run + b"b\r\n" + space * run + b"c" + space * run + b"\r\n\r\n"
        assert relaxed_body(body) == dkimpy.RelaxedCanonicalization.canonicalize_body(body)


def test_it_fails_verification_against_another_key(signer):
    _, other_public = generate_key(1024)
    assert not dkimpy_verify(campaign_message(signer), other_public)


lines = st.lists(
    st.text(st.sampled_from(["a", "b", " ", "\t", ".", "é"]), max_size=20), max_size=12
)


@settings(max_examples=100, deadline=None)
@given(body_lines=lines, final_newline=st.booleans(), subject=st.text("ab \t", max_size=20))
def test_it_canonicalises_any_body_and_header_as_dkimpy_does(
    key, signer, body_lines, final_newline, subject
):
    body = "\r\n".join(body_lines).encode() + (b"\r\n" if final_newline else b"")
    message = (
        b"From: news@acme.example\r\nTo: ann@example.org\r\nSubject: "
        + subject.encode()
        + b"\r\nDate: Fri, 14 Mar 2025 09:26:53 +0000\r\nMessage-ID: <1.x@acme.example>\r\n\r\n"
        + body
    )
    signed = signer.sign(message)
    assert dkimpy_verify(signed, key[1])
    assert dkimpy.RelaxedCanonicalization.canonicalize_body(body) == relaxed_body(body)


@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=400), to_name=st.text(max_size=60))
def test_it_signs_any_built_message_verifiably(key, signer, text, to_name):
    to_name = " ".join(to_name.replace("\x00", " ").split())
    message = campaign_message(signer, text=text, html=None, to_name=to_name)
    assert dkimpy_verify(message, key[1])


def test_it_signs_messages_with_attachments(key, signer):
    parts = MessageParts(
        from_email="news@acme.example",
        attachments=[("a.pdf", "application/pdf", b"%PDF" * 500)],
        dkim=signer,
    )
    base = dict(
        to_email="ann@example.org",
        to_name="",
        subject="x",
        html="<p>x</p>",
        text="x",
        message_id="<1.a@acme.example>",
        date=datetime(2025, 1, 1, tzinfo=UTC),
        list_unsubscribe_url="https://acme.example/u",
    )
    assert dkimpy_verify(build_message(parts, **base), key[1])
    unsigned = build_message(dataclasses.replace(parts, dkim=None), **base)
    assert not unsigned.startswith(b"DKIM-Signature")


def test_it_refuses_keys_and_names_it_cannot_use(key):
    with pytest.raises(ValueError, match="cannot be read"):
        DkimSigner(DOMAIN, SELECTOR, "not a key")
    ed_pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="not an RSA key"):
        DkimSigner(DOMAIN, SELECTOR, ed_pem)
    with pytest.raises(ValueError, match="selector"):
        DkimSigner(DOMAIN, "bad_selector!", key[0])
    with pytest.raises(ValueError, match="domain"):
        DkimSigner("not a domain", SELECTOR, key[0])
    with pytest.raises(ValueError, match="bits"):
        generate_key(512)
    with pytest.raises(ValueError, match="separator"):
        DkimSigner(DOMAIN, SELECTOR, key[0]).sign(b"Subject: no body separator\r\n")


def test_a_signed_message_keeps_crlf_line_ends_only(signer):
    # The SMTP client skips its bare CR/LF scan for build_message's output (mime.CrlfMessage).
    from mailmarketer.delivery.mime import CrlfMessage

    message = campaign_message(signer, text="a\rb\nc.\n.d", html="<p>x\r\n.</p>")
    assert type(message) is CrlfMessage
    data = bytes(message)
    assert data.count(b"\n") == data.count(b"\r") == data.count(b"\r\n")


@pytest.mark.parametrize(
    "names",
    [("from",), ("from", "to", "subject", "date"), tuple(dkim_module.SIGNED_HEADERS) * 2],
)
def test_its_signature_header_pieces_relax_as_the_whole_header_does(signer, names):
    (head, middle, tail), relaxed = signer._template(names)
    for stamp, body_hash in (
        (b"0", b"AAAA"),
        (b"1733369600", b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
    ):
        header = head + stamp + middle + body_hash + tail
        assert b"".join((relaxed[0], stamp, relaxed[1], body_hash, relaxed[2])) == (
            dkim_module._relaxed_header(header)
        )


def test_it_signs_a_batch_in_a_row_as_it_signs_each_message(key, signer):
    # engine._build leaves its messages unsigned (dkim.Unsigned) and engine._signed signs the
    # batch's together: the same bytes as sign() of each, which dkimpy verifies.
    import hashlib

    from mailmarketer.delivery.mime import CrlfMessage, DotFreeMessage

    unsigned_parts = MessageParts(from_email="news@acme.example", list_id="42.lists.acme.example")
    messages = [
        build_message(
            unsigned_parts,
            to_email=f"p{i}@example.org",
            to_name=f"Person  {i}",
            subject=f"News {i}",
            html=f"<p>Hello   {i}</p>\n",
            text=f"Hello {i}\t\n\n",
            message_id=make_message_id(i, uuid.uuid4(), DOMAIN),
            date=datetime(2025, 3, 14, 9, 26, 53 + i, tzinfo=UTC),
            list_unsubscribe_url=f"https://acme.example/f/u/{i}.sig",
        )
        for i in range(3)
    ]
    batch = []
    for i, message in enumerate(messages):
        end = message.index(b"\r\n\r\n")
        digest = hashlib.sha256(relaxed_body(message[end + 4 :])).digest()
        header, signed = signer.unsigned_header(message[:end], digest, timestamp=1)
        kind = DotFreeMessage if i % 2 else CrlfMessage
        split = 100 + i
        pieces = (message[:split], message[split:])
        batch.append(dkim_module.Unsigned(signer, header, signed, pieces, kind))

    signed_all = dkim_module.sign_all(batch)

    for i, (message, made) in enumerate(zip(messages, signed_all, strict=True)):
        assert made == signer.sign(message, timestamp=1)
        assert type(made) is (DotFreeMessage if i % 2 else CrlfMessage)
        assert dkimpy_verify(made, key[1])


FIELDS = [
    b"From: news@acme.example",
    b"FROM:  Other <o@acme.example>",
    b"To: ann@example.org",
    b"TO: bob@example.org",
    b"Subject: Spring  news",
    b"Subject:\r\n\tfolded",
    b"Cc: cy@example.org",
    b"References: <a@b>",
    b"X-Mailer: ours",
    b"Date: Fri, 14 Mar 2025 09:26:53 +0000",
    b"Message-ID: <1.x@acme.example>",
    b"Content-Type: text/plain",
]


@settings(max_examples=60, deadline=None)
@given(fields=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=10))
def test_it_signs_any_order_and_repetition_of_fields_as_dkimpy_verifies(key, signer, fields):
    # One signer for every example: what it keeps per sequence of names (_plan) and per shared
    # field must fit every other sequence too.
    message = b"\r\n".join(fields) + b"\r\n\r\nHello\r\n"
    assert dkimpy_verify(signer.sign(message), key[1])
