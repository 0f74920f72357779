"""Test support for bounce processing: DSNs and complaints shaped as Postfix and the feedback
loops make them, for a ledger row (its VERP token and Message-ID) or for a token of the test's
choosing (a forged one)."""

from __future__ import annotations

from mailmarketer.delivery import engine


def token_for(row) -> str:
    return engine.verp_token(row.pk)


def message_id_for(row) -> str:
    return f"<{row.pk}.{row.campaign.uuid.hex}@acme.test>"


def dsn(
    address: str,
    *,
    token: str = "",
    message_id: str = "",
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "550 5.1.1 <{address}>: Recipient address rejected: User unknown",
    domain: str = "bounce.acme.test",
    nonce: str = "1",
) -> bytes:
    to = f"bounces+{token}@{domain}" if token else f"bounces@{domain}"
    quoted_id = f"Message-ID: {message_id}\n" if message_id else ""
    return f"""Return-Path: <>
Date: Thu,  3 Dec 2026 10:15:02 +0000 (UTC)
From: MAILER-DAEMON@mail.acme.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B{nonce}"
Message-Id: <{nonce}.dsn@mail.acme.test>

--B{nonce}
Content-Type: text/plain

The mail system

--B{nonce}
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.acme.test

Final-Recipient: rfc822; {address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic.format(address=address)}

--B{nonce}
Content-Type: text/rfc822-headers

Return-Path: <{to}>
From: Acme <news@acme.test>
To: {address}
{quoted_id}
--B{nonce}--
""".replace("\n", "\r\n").encode()


def arf(address: str, *, token: str = "", nonce: str = "1") -> bytes:
    mail_from = f"bounces+{token}@bounce.acme.test" if token else "news@acme.test"
    return f"""From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
To: fbl@acme.test
Subject: FW: Autumn news
MIME-Version: 1.0
Message-ID: <{nonce}.arf@arf.mail.yahoo.com>
Content-Type: multipart/report; report-type=feedback-report; boundary="A{nonce}"

--A{nonce}
Content-Type: text/plain

This is an email abuse report.

--A{nonce}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 0.1
Original-Mail-From: <{mail_from}>
Original-Rcpt-To: <{address}>

--A{nonce}--
""".replace("\n", "\r\n").encode()
