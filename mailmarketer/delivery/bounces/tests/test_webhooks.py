import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from django.test import Client

from mailmarketer.audience.models import Suppression
from mailmarketer.delivery.bounces import testing, webhooks
from mailmarketer.delivery.bounces.actions import do_reset_webhook_key, do_update_bounce_settings
from mailmarketer.delivery.bounces.models import Bounce
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import SETUP, launch, ledger_rows

MAILGUN_KEY = "key-mailgun-signing-0123456789"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
SUBSCRIBE_URL = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"


@pytest.fixture
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def sns_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def hook(ws, ec_key):
    key = do_reset_webhook_key(ws, actor=SETUP)
    public = ec_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    do_update_bounce_settings(
        ws,
        {
            "mailgun_signing_key": MAILGUN_KEY,
            "sendgrid_public_key": base64.b64encode(public).decode(),
            "ses_topic_arns": TOPIC,
        },
        actor=SETUP,
    )
    return key


@pytest.fixture
def row(ws, news, people):
    return ledger_rows(launch(ws, [news]), people[:1], [Delivery.Status.SENT])[0]


def _suppressed(ws):
    return list(Suppression.objects.filter(workspace=ws).values_list("reason", flat=True))


# -- Mailgun


def _mailgun(email, *, key=MAILGUN_KEY, timestamp=None, token="tok-1", event="failed"):  # noqa: S107
    timestamp = str(int(timestamp or time.time()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": {
                "event": event,
                "severity": "permanent",
                "recipient": email,
                "id": f"ev-{token}",
                "delivery-status": {
                    "code": 550,
                    "message": "5.1.1 The email account does not exist",
                },
                "message": {"headers": {"message-id": "x@acme.test"}},
            },
        }
    )


def _post(path, body, **extra):
    return Client().post(path, body, content_type="application/json", **extra)


def test_it_applies_a_signed_mailgun_failure(ws, hook, row):
    response = _post(f"/hooks/bounces/mailgun/{hook}/", _mailgun(row.subscriber.email))
    assert response.status_code == 200, response.content
    assert _suppressed(ws) == [Suppression.Reason.HARD_BOUNCE]
    bounce = Bounce.objects.get()
    assert (bounce.channel, bounce.provider, bounce.matched_by) == (
        "webhook",
        "mailgun",
        "provider",
    )


def test_it_refuses_mailgun_requests_unsigned_wrongly_signed_stale_or_replayed(ws, hook, row):
    email = row.subscriber.email
    path = f"/hooks/bounces/mailgun/{hook}/"
    assert (
        _post(path, json.dumps({"event-data": {"event": "failed", "recipient": email}})).status_code
        == 401
    )
    assert _post(path, _mailgun(email, key="not-the-key")).status_code == 401
    assert _post(path, _mailgun(email, timestamp=time.time() - 3600)).status_code == 401
    assert _post(path, "not json{").status_code == 400
    assert not Bounce.objects.exists() and not _suppressed(ws)
    body = _mailgun(email, event="complained", token="once")
    assert _post(path, body).status_code == 200
    replay = _post(path, body)
    assert replay.status_code == 409 and b"replayed" in replay.content
    assert Bounce.objects.count() == 1


def test_it_answers_404_to_an_unknown_key_or_provider(hook):
    assert _post("/hooks/bounces/mailgun/nope/", "{}").status_code == 404
    assert _post(f"/hooks/bounces/other/{hook}/", "{}").status_code == 404
    assert Client().get(f"/hooks/bounces/mailgun/{hook}/").status_code == 405


def test_it_refuses_a_token_of_another_workspace_through_this_workspaces_webhook(
    personas, ws, row, hook
):
    evil_key = do_reset_webhook_key(personas.evil, actor=SETUP)
    do_update_bounce_settings(personas.evil, {"ses_topic_arns": TOPIC}, actor=SETUP)
    # evil's verified SES event carrying acme's VERP token (in the mail's source) must not act.
    events = webhooks.ses_events(_ses_bounce(row.subscriber.email, testing.token_for(row)))
    from mailmarketer.delivery.bounces.apply import do_process_event

    bounce = do_process_event(events[0], workspace=personas.evil)
    assert bounce.outcome == "refused"
    assert not Suppression.objects.exists()
    assert evil_key


# -- SendGrid


def _sendgrid(ec_key, events, timestamp=None):
    body = json.dumps(events).encode()
    timestamp = str(int(timestamp or time.time()))
    signature = ec_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": base64.b64encode(signature).decode(),
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp,
    }
    return body, headers


def test_it_applies_a_signed_sendgrid_batch_and_refuses_forgeries(ws, hook, row, ec_key, people):
    path = f"/hooks/bounces/sendgrid/{hook}/"
    events = [
        {
            "email": row.subscriber.email,
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 unknown user",
            "sg_event_id": "sg-1",
        },
        {"email": people[1].email, "event": "spamreport", "sg_event_id": "sg-2"},
        {"email": people[2].email, "event": "delivered", "sg_event_id": "sg-3"},
    ]
    body, headers = _sendgrid(ec_key, events)
    assert (
        _post(
            path, body, **{**headers, "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": "1"}
        ).status_code
        == 401
    )
    assert _post(path, body + b" ", **headers).status_code == 401  # body changed after signing
    assert _post(path, body).status_code == 401  # unsigned
    other = ec.generate_private_key(ec.SECP256R1())
    assert (
        _post(path, *_sendgrid(other, events)[:1], **_sendgrid(other, events)[1]).status_code == 401
    )
    stale_body, stale_headers = _sendgrid(ec_key, events, timestamp=time.time() - 600)
    assert _post(path, stale_body, **stale_headers).status_code == 401
    assert not _suppressed(ws)
    assert _post(path, body, **headers).status_code == 200
    assert sorted(_suppressed(ws)) == ["complaint", "hard_bounce"]
    assert _post(path, body, **headers).status_code == 409


# -- Postmark


def _postmark(key, email, *, bounced_at=None, record_id=42, kind="HardBounce"):
    body = json.dumps(
        {
            "RecordType": "Bounce",
            "ID": record_id,
            "Type": kind,
            "Email": email,
            "BouncedAt": bounced_at or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        }
    )
    auth = "Basic " + base64.b64encode(f"postmark:{key}".encode()).decode()
    return body, {"HTTP_AUTHORIZATION": auth}


def test_it_applies_postmark_over_https_with_basic_auth_only(ws, hook, row):
    path = f"/hooks/bounces/postmark/{hook}/"
    body, auth = _postmark(hook, row.subscriber.email)
    assert _post(path, body, **auth).status_code == 403  # plain HTTP
    assert _post(path, body, secure=True).status_code == 401  # no basic auth
    assert (
        _post(path, body, secure=True, **_postmark("wrong", row.subscriber.email)[1]).status_code
        == 401
    )
    old, _ = _postmark(hook, row.subscriber.email, bounced_at="2020-01-01T00:00:00Z")
    assert _post(path, old, secure=True, **auth).status_code == 401
    assert not _suppressed(ws)
    assert _post(path, body, secure=True, **auth).status_code == 200
    assert _suppressed(ws) == ["hard_bounce"]
    assert _post(path, body, secure=True, **auth).status_code == 409


# -- Amazon SES through SNS


def _ses_bounce(email, token=""):
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "feedbackId": "fb-1",
                "bouncedRecipients": [
                    {
                        "emailAddress": email,
                        "status": "5.1.1",
                        "action": "failed",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
            "mail": {
                "source": f"bounces+{token}@bounce.acme.test" if token else "news@acme.test",
                "headers": [{"name": "Message-ID", "value": "<1.x@acme.test>"}],
            },
        }
    )


def _sns(
    key,
    message_type,
    *,
    message="hello",
    version="2",
    cert_url=CERT_URL,
    topic=TOPIC,
    timestamp=None,
    message_id="mid-1",
):
    data = {
        "Type": message_type,
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message,
        "Timestamp": timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    }
    if message_type == "SubscriptionConfirmation":
        data.update(Token="t", SubscribeURL=SUBSCRIBE_URL)
    digest = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 - SNS v1
    signed = webhooks.sns_string_to_sign(data)
    data["Signature"] = base64.b64encode(key.sign(signed, padding.PKCS1v15(), digest)).decode()
    return json.dumps(data)


class Fetcher:
    def __init__(self, pem):
        self.pem, self.urls = pem, []

    def __call__(self, url):
        self.urls.append(url)
        return self.pem


@pytest.fixture
def sns(monkeypatch, sns_cert):
    webhooks._certificates.clear()
    fetcher = Fetcher(sns_cert[1])
    monkeypatch.setattr(webhooks, "fetch_https", fetcher)
    return sns_cert[0], fetcher


def test_it_confirms_an_sns_subscription_only_after_its_signature_holds(ws, hook, sns):
    key, fetcher = sns
    path = f"/hooks/bounces/ses/{hook}/"
    forged = json.loads(_sns(key, "SubscriptionConfirmation"))
    forged["SubscribeURL"] = (
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=evil"
    )
    assert _post(path, json.dumps(forged)).status_code == 401
    assert SUBSCRIBE_URL not in fetcher.urls and forged["SubscribeURL"] not in fetcher.urls
    response = _post(path, _sns(key, "SubscriptionConfirmation"))
    assert response.status_code == 200 and b"confirmed" in response.content
    assert fetcher.urls[-1] == SUBSCRIBE_URL


def test_it_fetches_certificates_only_from_amazons_sns_domain(ws, hook, sns):
    key, fetcher = sns
    path = f"/hooks/bounces/ses/{hook}/"
    for url in (
        "http://sns.eu-west-1.amazonaws.com/c.pem",
        "https://sns.evil.example/c.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/c.pem",
        "https://user@sns.eu-west-1.amazonaws.com/c.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/c.pem",
    ):
        assert _post(path, _sns(key, "Notification", cert_url=url)).status_code == 401, url
    assert fetcher.urls == []


def test_it_applies_a_signed_ses_bounce_from_a_listed_topic(ws, hook, sns, row):
    key, _ = sns
    path = f"/hooks/bounces/ses/{hook}/"
    message = _ses_bounce(row.subscriber.email, testing.token_for(row))
    assert (
        _post(
            path, _sns(key, "Notification", message=message, topic="arn:aws:sns:x:1:other")
        ).status_code
        == 403
    )
    stale = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert (
        _post(path, _sns(key, "Notification", message=message, timestamp=stale)).status_code == 401
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _post(path, _sns(other_key, "Notification", message=message)).status_code == 401
    assert not _suppressed(ws)
    body = _sns(key, "Notification", message=message, version="1")
    assert _post(path, body).status_code == 200
    assert _suppressed(ws) == ["hard_bounce"]
    bounce = Bounce.objects.get()
    assert bounce.matched_by == "token" and bounce.delivery_id == row.pk
    assert _post(path, body).status_code == 409


def test_it_shows_the_webhook_key_once_to_a_settings_manager(alice_client, bob_client, ws):
    page = alice_client.get("/app/acme/settings/bounces/")
    assert page.status_code == 200 and b"No webhook key yet" in page.content
    made = alice_client.post("/app/acme/settings/bounces/webhook-key/")
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    html = made.content.decode()
    key = html.split("password): <code>")[1].split("</code>")[0]
    assert f"/hooks/bounces/mailgun/{key}/" in html
    assert key not in alice_client.get("/app/acme/settings/bounces/").content.decode()
    assert webhooks.settings_for_key(key).workspace_id == ws.pk
    # A marketer sees the settings but changes nothing.
    assert bob_client.get("/app/acme/settings/bounces/").status_code == 200
    assert bob_client.post("/app/acme/settings/bounces/webhook-key/").status_code == 403
    assert (
        bob_client.post(
            "/app/acme/settings/bounces/", {"soft_bounce_limit": 9, "soft_bounce_days": 9}
        ).status_code
        == 403
    )
    saved = alice_client.post(
        "/app/acme/settings/bounces/", {"soft_bounce_limit": 5, "soft_bounce_days": 10}
    )
    assert saved.status_code == 302


def test_it_hides_bounce_settings_from_an_analyst_and_another_workspace(
    carol_client, mallory_client
):
    assert carol_client.get("/app/acme/settings/bounces/").status_code == 403
    assert mallory_client.get("/app/acme/settings/bounces/").status_code == 404


def test_it_saves_a_mailbox_with_its_password_encrypted_and_asks_for_it_again_on_a_new_host(
    alice_client, bob_client, ws
):
    from mailmarketer.delivery.bounces.models import BounceMailbox

    form = {
        "host": "imap.acme.test",
        "port": 993,
        "tls_mode": "implicit",
        "verify_certificate": "on",
        "username": "bounces",
        "password": "s3cret",
        "folder": "INBOX",
        "after": "move",
        "move_to": "Done",
        "enabled": "on",
    }
    assert alice_client.post("/app/acme/settings/bounces/mailbox/", form).status_code == 302
    box = BounceMailbox.objects.get(workspace=ws)
    assert box.password == "s3cret" and box.verify_certificate
    page = alice_client.get("/app/acme/settings/bounces/mailbox/").content.decode()
    assert "s3cret" not in page and "A password is set" in page
    moved = alice_client.post(
        "/app/acme/settings/bounces/mailbox/", {**form, "host": "evil.example", "password": ""}
    )
    assert moved.status_code == 400 and b"type the password again" in moved.content
    assert BounceMailbox.objects.get(workspace=ws).host == "imap.acme.test"
    assert bob_client.get("/app/acme/settings/bounces/mailbox/").status_code == 403
