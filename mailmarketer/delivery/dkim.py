"""DKIM: keys, the DNS record to publish, signing (RFC 6376), and a check with dkimpy.

Signing is relaxed/relaxed rsa-sha256, written here on top of `cryptography` (OpenSSL) rather
than with `dkim.sign()`. Measured on this machine (benchmarks/wire_bench.py, 5 KB message,
RSA-2048): dkimpy's sign() takes ~7.4 ms a message, almost all of it dkimpy's pure-Python RSA
(`pow()` on Python integers, ~8 ms alone); OpenSSL's RSA signature takes ~0.45 ms. At 7.4 ms a
message one core could sign ~135 messages/s, far below what the rest of a send does. The
canonicalisation is short and exact, and the tests hold it to dkimpy: every signature made here
is verified with `dkim.verify()` (which `verify()` below wraps for the UI and the tests).

What is signed: From, To, Subject, Date, Message-ID, List-Unsubscribe, List-Unsubscribe-Post,
and, when present, Reply-To, List-Id, Feedback-ID, MIME-Version, Content-Type,
Content-Transfer-Encoding, Cc, In-Reply-To, References. The headers whose addition would change
what a reader sees or what an unsubscribe does (the first seven and Reply-To) are "over-signed":
named once more than they occur, so that a copy with one of them added no longer verifies.

The body hash covers the whole body (no l= tag): a forwarder appending a footer breaks the
signature, as it should.

Cost per message (benchmarks/render_bench.py --message --dkim, 15 KB message): the RSA-2048
signature ~250 us, everything else ~65 us (the relaxed body ~30 us with bytes operations, its
SHA-256 ~8 us, the header fields: those every message of a campaign shares are canonicalised
once). Before the 2026-12-04 send13b round a regular expression over every space of the body
made the rest ~600 us. With the body's digest given (delivery/prebuilt.py), what is left
around the RSA signature is the header fields: 15.8 -> 10.3 us a message (send13e, 2026-12-05)
once the fields every message shares keep their names with their canonical forms and the
DKIM-Signature header's relaxed form is made once per set of signed names; 10-14 -> 8-10 us
(send15a) with which fields are signed in which order planned once per sequence of names. The
engine makes a batch's RSA signatures in a row after building its messages (Unsigned,
sign_all: ~15-30 us a message less than signing each as it is built).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailmarketer.delivery.mime import ascii_domain

SIGNED_HEADERS = (
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
    "content-transfer-encoding",
    "cc",
    "in-reply-to",
    "references",
)
OVERSIGNED = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "reply-to",
    }
)

_SIGNED = tuple((name, name.encode("ascii")) for name in SIGNED_HEADERS)
_OVERSIGNED_RAW = frozenset(name.encode("ascii") for name in OVERSIGNED)
# Fields whose canonical form is remembered between messages: the same in every message of a
# campaign (Date changes once a second; it is kept too, the cache is bounded).
_SHARED_FIELDS = frozenset(
    name.encode("ascii")
    for name in (
        "from",
        "reply-to",
        "list-id",
        "feedback-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe-post",
        "date",
    )
)
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_FIELD_SPLIT = re.compile(rb"\r\n(?![ \t])")
_WSP_RUN = re.compile(rb"[ \t]+")
_SPACE_RUN = re.compile(rb"  +")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_TRAILING_EMPTY_LINES = re.compile(rb"(?:\r\n)+\Z")


def generate_key(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key pair: (private key as PKCS#8 PEM, public key as the base64 of its DER,
    which is what the DNS record's p= holds)."""
    if bits not in (1024, 2048, 3072, 4096):
        raise ValueError(f"bits must be 1024, 2048, 3072 or 4096 (2048 recommended): {bits!r}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der).decode("ascii")


def _check_selector(selector: str) -> str:
    if not isinstance(selector, str) or not _SELECTOR.match(selector.lower()):
        raise ValueError(
            f"DKIM selector must be letters, digits and hyphens (dot-separated): {selector!r}"
        )
    return selector.lower()


def dns_record(selector: str, domain: str, public_b64: str) -> tuple[str, str]:
    """(name, value) of the TXT record to publish. DNS servers split a value longer than 255
    characters into several strings themselves when it is entered in their UI; in a zone file
    write it as several quoted strings."""
    selector = _check_selector(selector)
    try:
        base64.b64decode(public_b64, validate=True)
    except (ValueError, TypeError):
        raise ValueError("public key is not base64") from None
    return f"{selector}._domainkey.{ascii_domain(domain)}", f"v=DKIM1; k=rsa; p={public_b64}"


def _relaxed_header(field: bytes) -> bytes:
    name, colon, value = field.partition(b":")
    if not colon:
        raise ValueError(f"not a header field: {field[:60]!r}")
    if b"\r\n" in value or b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value))
    return name.strip(b" \t").lower() + b":" + value.strip(b" \t")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: whitespace runs to one space, none before a line end, no empty lines at
    the end, a CRLF after an unterminated last line, and an empty result for an empty body.
    In dkimpy's order: a last line without CRLF keeps its trailing space (ours always end in
    CRLF; the property test holds this to dkimpy).

    A substitution of `[ \t]+` matched every single space between words (each a run of one)
    and took ~600 us for a 15 KB message with indented HTML, twice the RSA signature; here
    tabs become spaces with bytes.translate-like replace, and only runs of two or more spaces
    are matched (~15 us), after C scans that find nothing to do in most bodies."""
    body = relaxed_inner(body)
    if body.endswith(b"\r\n"):
        if body.endswith(b"\r\n\r\n"):
            body = _TRAILING_EMPTY_LINES.sub(b"\r\n", body)
    else:
        body += b"\r\n"
    return b"" if body == b"\r\n" else body


def relaxed_inner(body: bytes) -> bytes:
    """relaxed_body() without what it does at the end of the body: tabs to spaces, runs of
    spaces to one, no space before a line end. Of a piece of a body whose neighbours are not
    spaces (delivery/prebuilt.py), this is that piece's share of the relaxed body."""
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACE_RUN.sub(b" ", body)  # starts with two spaces: single ones cost no match
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    return body


class DkimSigner:
    """Signs messages for one domain with one key; build once per campaign (loading the key
    costs more than a signature)."""

    def __init__(self, domain: str, selector: str, private_pem: str):
        self.domain = ascii_domain(domain)
        self.selector = _check_selector(selector)
        try:
            key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
            raise ValueError(f"DKIM private key for {domain} cannot be read: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"DKIM private key for {domain} is not an RSA key")
        if key.key_size < 1024:
            raise ValueError(f"DKIM key for {domain} has {key.key_size} bits; use 2048")
        self._key = key
        # The signed fields every message of a campaign shares: bytes of the whole field ->
        # (its lower-case name, its relaxed form with CRLF); see sign().
        self._canonical: dict[bytes, tuple[bytes, bytes]] = {}
        self._templates: dict[tuple[str, ...], tuple] = {}
        # Per sequence of header field names, what unsigned_header() signs and how (_plan).
        self._plans: dict[tuple[bytes, ...], tuple] = {}

    def _template(self, names: tuple[str, ...]) -> tuple:
        """The DKIM-Signature header as three pieces around its t= and bh= values, and the
        same three pieces of its relaxed form. The values are tokens without spaces or line
        ends, so relaxing the header with them in place is relaxing each piece around them
        (the test holds the two to _relaxed_header of the whole header)."""
        found = self._templates.get(names)
        if found is None:
            if len(self._templates) > 64:
                self._templates.clear()
            header = (
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain};\r\n"
                f" s={self.selector}; t=\0;\r\n{_h_tag(names)}\r\n bh=\0;\r\n b="
            ).encode("ascii")
            found = (tuple(header.split(b"\0")), tuple(_relaxed_header(header).split(b"\0")))
            if len(found[0]) != 3 or len(found[1]) != 3:
                raise ValueError(f"DKIM-Signature header cannot be made for {names!r}")
            self._templates[names] = found
        return found

    def sign(
        self, message: bytes, *, timestamp: int | None = None, body_digest: bytes | None = None
    ) -> bytes:
        """The message with a DKIM-Signature header prepended. The message must use CRLF line
        endings (build_message's output does).

        Per message this is one SHA-256 over the canonical body, the canonical form of the
        few signed header fields that differ between recipients (To, Message-ID,
        List-Unsubscribe...; those every message of a campaign shares, From or Content-Type, are
        canonicalised once and remembered), and the RSA signature itself (OpenSSL), which is
        most of the cost. `body_digest`, when given, is the SHA-256 of the message's relaxed
        body, computed by a caller that knows it more cheaply (delivery/prebuilt.py)."""
        end = message.find(b"\r\n\r\n")
        if end < 0:
            raise ValueError("message has no header/body separator (CRLF CRLF)")
        if body_digest is None:
            body_digest = hashlib.sha256(relaxed_body(message[end + 4 :])).digest()
        return self.header(message[:end], body_digest, timestamp=timestamp) + message

    def header(self, fields: bytes, body_digest: bytes, *, timestamp: int | None = None) -> bytes:
        """The DKIM-Signature header (ending in CRLF) that sign() puts before a message whose
        header fields are `fields` (the header block without its last CRLF and the empty line)
        and whose relaxed body has the SHA-256 `body_digest`: for a caller that joins the
        message once with it instead of joining it and copying it again here."""
        header, signed = self.unsigned_header(fields, body_digest, timestamp=timestamp)
        return b"".join((header, _folded(self._key.sign(signed, _PKCS1, _SHA256)), b"\r\n"))

    def unsigned_header(
        self, fields: bytes, body_digest: bytes, *, timestamp: int | None = None
    ) -> tuple[bytes, bytes]:
        """header() without its RSA signature: (the DKIM-Signature header up to its empty b=,
        the bytes the signature is made of). Unsigned and sign_all() make a batch's
        signatures in a row after its messages are built (engine._build)."""
        known = self._canonical
        if len(known) > 2048:
            known.clear()  # a new campaign's headers, or a long run of distinct Dates
        split = _FIELD_SPLIT.split(fields)
        hits = [known.get(field) for field in split]
        names = tuple(
            [
                hit[0] if hit is not None else field.partition(b":")[0].strip(b" \t").lower()
                for field, hit in zip(split, hits, strict=True)
            ]
        )
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plan(names)
        order, template = plan
        canonical = []
        for i in order:
            hit = hits[i]
            if hit is None:
                form = _relaxed_header(split[i]) + b"\r\n"
                name = names[i]
                if name in _SHARED_FIELDS:
                    known[split[i]] = (name, form)
                canonical.append(form)
            else:
                canonical.append(hit[1])

        body_hash = base64.b64encode(body_digest)
        stamp = b"%d" % (int(time.time()) if timestamp is None else int(timestamp))
        # The header around its two values that change (t= and bh=), as written and in its
        # relaxed form, made once per set of signed names.
        (head, middle, tail), (r_head, r_middle, r_tail) = template
        header = b"".join((head, stamp, middle, body_hash, tail))
        canonical.append(b"".join((r_head, stamp, r_middle, body_hash, r_tail)))
        return header, b"".join(canonical)

    def _plan(self, names: tuple[bytes, ...]) -> tuple[tuple[int, ...], tuple]:
        """For header fields with these names in this order: the places of the signed ones in
        the order they are signed, and the DKIM-Signature header's template (_template). One
        set of names per campaign: made once, where walking the 16 signed names per message,
        with a dict of the fields by name, cost ~4 us (send15a)."""
        if len(self._plans) > 64:
            self._plans.clear()
        places: dict[bytes, list[int]] = {}
        for i, name in enumerate(names):
            places.setdefault(name, []).append(i)
        order = []
        signed = []
        for name, raw in _SIGNED:
            found = places.get(raw, [])
            # Several instances are signed from the last one up (RFC 6376 5.4.2).
            order.extend(reversed(found))
            signed.extend([name] * len(found))
            if raw in _OVERSIGNED_RAW:
                signed.append(name)  # one more than there are: none may be added
        plan = (tuple(order), self._template(tuple(signed)))
        self._plans[names] = plan
        return plan


def _folded(signature: bytes) -> bytes:
    """The b= value: the signature in base64, folded every 72 characters."""
    signature = base64.b64encode(signature)
    return b"\r\n  ".join([signature[i : i + 72] for i in range(0, len(signature), 72)])


class Unsigned:
    """A message built but for its DKIM signature: the DKIM-Signature header up to its b=, the
    bytes to sign (DkimSigner.unsigned_header), the pieces of the message after the header and
    the type to make of the whole (mime.CrlfMessage or DotFreeMessage). sign_all() signs a
    batch of them.

    Why not sign each message as it is built: an RSA signature between two messages' Python
    work costs more than the same signatures made in a row, as the two evict each other's
    code and data from the core's caches (in the build loop each signature took ~8-10 us
    longer than alone, and the Python around it slower too). render_bench's campaign, each
    message built and signed, against a batch of 200 built, then their 200 signatures (thread
    CPU, min of 9 passes over 1,000 recipients, alternated, send15a 2026-12-05): 373-386
    against 359-369 us a message at load 2, 389-396 against 361-366 at load 5-7.
    """

    __slots__ = ("header", "message_type", "pieces", "signed", "signer")

    def __init__(
        self, signer: DkimSigner, header: bytes, signed: bytes, pieces: tuple, message_type: type
    ):
        self.signer = signer
        self.header = header
        self.signed = signed
        self.pieces = pieces
        self.message_type = message_type


def sign_all(messages: list[Unsigned]) -> list[bytes]:
    """The messages with their DKIM-Signature headers: every RSA signature first, then the
    messages joined (see Unsigned)."""
    signatures = [m.signer._key.sign(m.signed, _PKCS1, _SHA256) for m in messages]
    return [
        m.message_type(b"".join((m.header, _folded(signature), b"\r\n", *m.pieces)))
        for m, signature in zip(messages, signatures, strict=True)
    ]


@lru_cache(maxsize=64)
def _h_tag(names: tuple[str, ...]) -> str:
    """The h= tag's lines for these names, folded before 78 characters (one set per
    campaign)."""
    h_lines = []
    line = " h="
    for i, name in enumerate(names):
        piece = name + (":" if i < len(names) - 1 else ";")
        if len(line) + len(piece) > 76:
            h_lines.append(line)
            line = "  "
        line += piece
    h_lines.append(line)
    return "\r\n".join(h_lines)


def verify(message: bytes, public_b64: str, *, selector: str, domain: str) -> bool:
    """Check a signed message with dkimpy against this public key (no DNS is asked: the record
    is the one dns_record() describes). For tests and for the "check my setup" page."""
    import dkim

    name, value = dns_record(selector, domain, public_b64)

    def dnsfunc(query, timeout=5):
        looked_up = query.decode("ascii") if isinstance(query, bytes) else query
        return value.encode("ascii") if looked_up.rstrip(".").lower() == name else None

    try:
        return bool(dkim.verify(message, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False
