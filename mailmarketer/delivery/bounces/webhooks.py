"""Provider webhooks: bounces and complaints reported by a relay provider over HTTPS.

One URL per workspace and provider, `/hooks/bounces/<provider>/<key>/`; the key is a secret
shown once (only its SHA-256 is kept). Each provider's own proof is checked before anything is
read as an event, and nothing is suppressed without it:

- Mailgun: HMAC-SHA256 of timestamp + token with the workspace's Mailgun signing key; the
  timestamp within FRESH_S; the token is the receipt.
- SendGrid: ECDSA P-256 signature of timestamp + body, checked with SendGrid's verification
  public key; the timestamp within FRESH_S; the signature is the receipt.
- Postmark: HTTP basic auth over HTTPS only, the password being the URL's key; BouncedAt within
  POSTMARK_MAX_AGE_S (Postmark signs nothing); the record id is the receipt.
- Amazon SES through SNS: the SNS signature (v1 SHA1, v2 SHA256) checked with the certificate at
  SigningCertURL, which must be https://sns.<region>.amazonaws.com/...pem (fetched only from
  there), from a topic the workspace listed; Timestamp within SNS_MAX_AGE_S; the MessageId is
  the receipt.

A subscription confirmation (SNS) is confirmed, by fetching its SubscribeURL (also on Amazon's
SNS domain), only after its signature held and its topic is listed. A refusal answers 4xx with
the reason and writes nothing; an accepted request is applied in one transaction with its
receipt, so a replay is refused and a retried event is applied once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from . import classify as kinds
from .apply import Event, do_process_event
from .models import Bounce, BounceSettings, WebhookReceipt

FRESH_S = 300  # Mailgun and SendGrid sign a timestamp: older requests are refused
SNS_MAX_AGE_S = 3600  # SNS retries a delivery for up to an hour with its first timestamp
POSTMARK_MAX_AGE_S = 24 * 3600  # Postmark signs nothing; its own bounce time bounds replays
MAX_BODY = 1024 * 1024
MAX_EVENTS = 1000
PROVIDERS = ("mailgun", "sendgrid", "postmark", "ses")
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]{1,30}\.amazonaws\.com(\.cn)?$")
Kind = Bounce.Kind


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Verified:
    receipt: str  # what makes this request unique (hashed before it is stored)
    events: list[Event]
    confirm_url: str = ""  # SNS: the subscription to confirm


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def settings_for_key(key: str) -> BounceSettings | None:
    if not key or len(key) > 100:
        return None
    return (
        BounceSettings.objects.select_related("workspace")
        .filter(webhook_key_hash=key_hash(key))
        .first()
    )


def fetch_https(url: str) -> bytes:
    """GET an https URL on Amazon's SNS domain (checked by the caller), at most 64 KB, 10 s."""
    if not sns_url_ok(url):
        raise Refused(400, "not an Amazon SNS URL")
    request = urllib.request.Request(url, headers={"User-Agent": "Mail Marketer"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - https, checked
        return response.read(64 * 1024)


def sns_url_ok(url: str, *, pem: bool = False) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.hostname is not None
        and bool(_SNS_HOST.match(parts.hostname))
        and parts.port in (None, 443)
        and not parts.username
        and not parts.password
        and (not pem or parts.path.endswith(".pem"))
    )


# -- Mailgun ------------------------------------------------------------------------------------


def verify_mailgun(conf: BounceSettings, body: bytes, now: float) -> Verified:
    if not conf.mailgun_signing_key:
        raise Refused(403, "no Mailgun signing key is set for this workspace")
    data = _json(body)
    signature = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(signature, dict):
        raise Refused(401, "unsigned: no signature object")
    timestamp, token, digest = (
        str(signature.get(k, ""))[:200] for k in ("timestamp", "token", "signature")
    )
    if not (timestamp.isdigit() and token and digest):
        raise Refused(401, "unsigned: timestamp, token or signature missing")
    expected = hmac.new(
        conf.mailgun_signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, digest.lower()):
        raise Refused(401, "wrong signature")
    _fresh(int(timestamp), now, FRESH_S)
    event = data.get("event-data")
    if not isinstance(event, dict):
        return Verified(token, [])
    name = str(event.get("event", ""))
    status = event.get("delivery-status") if isinstance(event.get("delivery-status"), dict) else {}
    text = f"{status.get('code', '')} {status.get('message', '')} {status.get('description', '')}"
    if name == "complained":
        kind = Kind.COMPLAINT
    elif name == "failed" and event.get("severity") == "permanent":
        kind = kinds.severity(str(status.get("enhanced-code", "")), text)
    elif name == "failed":
        kind = Kind.DELAYED
    else:
        return Verified(token, [])
    headers = (event.get("message") or {}).get("headers") or {}
    message_id = str(headers.get("message-id", ""))[:300] if isinstance(headers, dict) else ""
    return Verified(
        token,
        [
            Event(
                "mailgun",
                str(event.get("id", token))[:200],
                kind,
                str(event.get("recipient", ""))[:320],
                _status_in(text),
                " ".join(text.split())[:500],
                f"<{message_id.strip('<>')}>" if message_id else "",
                json.dumps(event)[:100_000].encode(),
            )
        ],
    )


# -- SendGrid -----------------------------------------------------------------------------------


def verify_sendgrid(conf: BounceSettings, headers, body: bytes, now: float) -> Verified:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not conf.sendgrid_public_key:
        raise Refused(403, "no SendGrid verification key is set for this workspace")
    signature = headers.get("X-Twilio-Email-Event-Webhook-Signature", "")[:500]
    timestamp = headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")[:40]
    if not signature or not timestamp.isdigit():
        raise Refused(401, "unsigned: the signature or timestamp header is missing")
    try:
        text = conf.sendgrid_public_key.strip()
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
        key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        raise Refused(401, "wrong signature") from None
    _fresh(int(timestamp), now, FRESH_S)
    data = _json(body)
    if not isinstance(data, list):
        raise Refused(400, "expected a JSON array of events")
    events = []
    for item in data[:MAX_EVENTS]:
        if not isinstance(item, dict):
            continue
        name = str(item.get("event", ""))
        reason = str(item.get("reason", ""))[:500]
        status = str(item.get("status", ""))[:12]
        if name == "spamreport":
            kind = Kind.COMPLAINT
        elif name == "bounce" and item.get("type") == "blocked":
            kind = Kind.SOFT
        elif name == "bounce":
            kind = kinds.severity(status, reason)
        else:
            continue  # deliveries, opens, clicks, deferrals: not ours to act on
        events.append(
            Event(
                "sendgrid",
                str(item.get("sg_event_id", ""))[:200]
                or hashlib.sha256(json.dumps(item).encode()).hexdigest(),
                kind,
                str(item.get("email", ""))[:320],
                status,
                reason,
                str(item.get("smtp-id", ""))[:300],
                json.dumps(item)[:100_000].encode(),
            )
        )
    return Verified(signature, events)


# -- Postmark -----------------------------------------------------------------------------------

_POSTMARK_KINDS = {
    "HardBounce": Kind.HARD,
    "BadEmailAddress": Kind.HARD,
    "SoftBounce": Kind.SOFT,
    "Transient": Kind.SOFT,
    "DnsError": Kind.SOFT,
    "SpamComplaint": Kind.COMPLAINT,
    "AutoResponder": Kind.AUTO_REPLY,
}


def verify_postmark(conf: BounceSettings, key: str, request, now: float) -> Verified:
    if not request.is_secure():
        raise Refused(403, "Postmark's basic auth is accepted over HTTPS only")
    header = request.headers.get("Authorization", "")[:500]
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise Refused(401, "unsigned: no basic auth")
    try:
        _, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Refused(401, "malformed basic auth") from None
    if not hmac.compare_digest(key_hash(password), conf.webhook_key_hash):
        raise Refused(401, "wrong password")
    data = _json(request.body)
    if not isinstance(data, dict):
        raise Refused(400, "expected a JSON object")
    record, record_id = str(data.get("RecordType", ""))[:40], str(data.get("ID", ""))[:40]
    if not record_id:
        raise Refused(400, "the record has no ID")
    when = _iso(str(data.get("BouncedAt") or data.get("ReceivedAt") or "")[:40])
    if when is None:
        raise Refused(400, "the record has no BouncedAt time")
    _fresh(when, now, POSTMARK_MAX_AGE_S)
    kind = _POSTMARK_KINDS.get(str(data.get("Type", "")), Kind.UNKNOWN)
    if record not in ("Bounce", "SpamComplaint"):
        return Verified(f"{record}:{record_id}", [])
    details = str(data.get("Details") or data.get("Description") or "")[:500]
    return Verified(
        f"{record}:{record_id}",
        [
            Event(
                "postmark",
                f"{record}:{record_id}",
                kind,
                str(data.get("Email", ""))[:320],
                _status_in(details),
                details,
                "",
                json.dumps(data)[:100_000].encode(),
            )
        ],
    )


# -- Amazon SES through SNS -----------------------------------------------------------------------

_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_certificates: dict[str, object] = {}


def sns_string_to_sign(message: dict) -> bytes:
    names = _SIGNED[message["Type"]]
    parts = []
    for name in names:
        if name == "Subject" and "Subject" not in message:
            continue
        parts.append(f"{name}\n{message[name]}\n")
    return "".join(parts).encode()


def verify_ses(conf: BounceSettings, body: bytes, now: float, fetch) -> Verified:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    message = _json(body)
    if not isinstance(message, dict) or message.get("Type") not in _SIGNED:
        raise Refused(400, "not an SNS message")
    if any(
        not isinstance(message.get(n, ""), str)
        for n in (*_SIGNED[message["Type"]], "Signature", "SigningCertURL")
    ):
        raise Refused(400, "malformed SNS message")
    missing = [n for n in _SIGNED[message["Type"]] if n != "Subject" and n not in message]
    if missing or not message.get("Signature"):
        raise Refused(
            401, f"unsigned or incomplete SNS message (missing {', '.join(missing) or 'Signature'})"
        )
    cert_url = message.get("SigningCertURL", "")
    if not sns_url_ok(cert_url, pem=True):
        raise Refused(401, "the signing certificate is not on Amazon's SNS domain")
    version = str(message.get("SignatureVersion", ""))
    if version not in ("1", "2"):
        raise Refused(401, "unknown SNS signature version")
    topics = {line.strip() for line in conf.ses_topic_arns.splitlines() if line.strip()}
    if message["TopicArn"] not in topics:
        raise Refused(403, "the SNS topic is not one this workspace listed")
    certificate = _certificates.get(cert_url)
    if certificate is None:
        try:
            certificate = x509.load_pem_x509_certificate(fetch(cert_url))
        except Refused:
            raise
        except Exception:
            raise Refused(401, "the signing certificate could not be fetched or read") from None
        if len(_certificates) > 50:
            _certificates.clear()
        _certificates[cert_url] = certificate
    try:
        certificate.public_key().verify(
            base64.b64decode(message["Signature"]),
            sns_string_to_sign(message),
            padding.PKCS1v15(),
            hashes.SHA1() if version == "1" else hashes.SHA256(),  # noqa: S303 - SNS v1 is SHA1
        )
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        raise Refused(401, "wrong signature") from None
    when = _iso(message["Timestamp"])
    if when is None:
        raise Refused(400, "the SNS message has no valid Timestamp")
    _fresh(when, now, SNS_MAX_AGE_S)
    receipt = message["MessageId"]
    if message["Type"] == "SubscriptionConfirmation":
        if not sns_url_ok(message["SubscribeURL"]):
            raise Refused(400, "the SubscribeURL is not on Amazon's SNS domain")
        return Verified(receipt, [], confirm_url=message["SubscribeURL"])
    if message["Type"] == "UnsubscribeConfirmation":
        return Verified(receipt, [])
    return Verified(receipt, ses_events(message["Message"]))


def ses_events(text: str) -> list[Event]:
    data = _json(text.encode("utf-8", "replace"))
    if not isinstance(data, dict):
        return []
    kind_name = str(data.get("notificationType") or data.get("eventType") or "")
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    message_id = ""
    for header in (mail.get("headers") or [])[:200]:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            message_id = str(header.get("value", ""))[:300]
    raw = text.encode("utf-8", "replace")[:100_000]
    events = []
    if kind_name == "Bounce" and isinstance(data.get("bounce"), dict):
        bounce = data["bounce"]
        soft_subtypes = ("MailboxFull", "MessageTooLarge", "ContentRejected", "AttachmentRejected")
        kind = {
            "Permanent": Kind.SOFT if bounce.get("bounceSubType") in soft_subtypes else Kind.HARD,
            "Transient": Kind.SOFT,
        }.get(str(bounce.get("bounceType", "")), Kind.UNKNOWN)
        for person in (bounce.get("bouncedRecipients") or [])[:MAX_EVENTS]:
            if isinstance(person, dict):
                events.append(
                    Event(
                        "ses",
                        f"{bounce.get('feedbackId', '')}:{person.get('emailAddress', '')}"[:200],
                        kind,
                        str(person.get("emailAddress", ""))[:320],
                        str(person.get("status", ""))[:12],
                        str(person.get("diagnosticCode", ""))[:500],
                        message_id,
                        raw,
                    )
                )
    elif kind_name == "Complaint" and isinstance(data.get("complaint"), dict):
        complaint = data["complaint"]
        kind = (
            Kind.UNKNOWN if complaint.get("complaintFeedbackType") == "not-spam" else Kind.COMPLAINT
        )
        for person in (complaint.get("complainedRecipients") or [])[:MAX_EVENTS]:
            if isinstance(person, dict):
                events.append(
                    Event(
                        "ses",
                        f"{complaint.get('feedbackId', '')}:{person.get('emailAddress', '')}"[:200],
                        kind,
                        str(person.get("emailAddress", ""))[:320],
                        "",
                        f"feedback-type: {complaint.get('complaintFeedbackType', 'missing')}"[:500],
                        message_id,
                        raw,
                    )
                )
    return events


# -- the one entry -------------------------------------------------------------------------------


def handle(provider: str, key: str, request, *, fetch=None, now: float | None = None):
    """(HTTP status, text) for one webhook request."""
    now = time.time() if now is None else now
    if provider not in PROVIDERS:
        return 404, "unknown provider"
    conf = settings_for_key(key)
    if conf is None:
        return 404, "unknown webhook URL"
    body = request.body
    if len(body) > MAX_BODY:
        return 413, "request too large"
    try:
        if provider == "mailgun":
            verified = verify_mailgun(conf, body, now)
        elif provider == "sendgrid":
            verified = verify_sendgrid(conf, request.headers, body, now)
        elif provider == "postmark":
            verified = verify_postmark(conf, key, request, now)
        else:
            verified = verify_ses(conf, body, now, fetch or fetch_https)
        if verified.confirm_url:
            # Confirming twice is harmless; a confirmation that failed must be retryable, so the
            # receipt is written after it.
            try:
                (fetch or fetch_https)(verified.confirm_url)
            except Refused:
                raise
            except Exception:
                return 502, "the subscription could not be confirmed; try again"
            _apply(conf, provider, verified)
            return 200, "subscription confirmed"
        applied = _apply(conf, provider, verified)
    except Refused as refused:
        return refused.status, refused.reason
    return 200, f"applied {applied} event(s)"


def _apply(conf: BounceSettings, provider: str, verified: Verified) -> int:
    receipt = hashlib.sha256(verified.receipt.encode("utf-8", "replace")).hexdigest()
    try:
        with transaction.atomic():
            WebhookReceipt.objects.create(
                workspace_id=conf.workspace_id, provider=provider, receipt=receipt
            )
            for event in verified.events:
                do_process_event(event, workspace=conf.workspace)
    except IntegrityError:
        raise Refused(409, "replayed: this request was received before") from None
    return len(verified.events)


def purge_receipts_one() -> bool:
    """Worker duty: receipts older than twice the longest freshness window can go (a request
    that old is refused as stale anyway)."""
    from datetime import timedelta

    from django.utils.timezone import now

    cutoff = now() - timedelta(seconds=2 * POSTMARK_MAX_AGE_S)
    ids = list(
        WebhookReceipt.objects.filter(received_at__lt=cutoff).values_list("id", flat=True)[:1000]
    )
    if not ids:
        return False
    WebhookReceipt.objects.filter(pk__in=ids).delete()
    return True


# -- helpers -------------------------------------------------------------------------------------


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Refused(400, "the body is not JSON") from None


def _fresh(timestamp: float, now: float, window: int) -> None:
    if abs(now - timestamp) > window:
        raise Refused(401, f"stale: the request's time is more than {window} s from ours")


def _iso(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _status_in(text: str) -> str:
    match = kinds._STATUS.search(text or "")
    return ".".join(match.groups()) if match else ""
