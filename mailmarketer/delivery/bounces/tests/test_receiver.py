import asyncio
from types import SimpleNamespace

from django.db import OperationalError

from mailmarketer.delivery.bounces import receiver
from mailmarketer.delivery.bounces.receiver import BounceHandler


def _handler(**more):
    return BounceHandler(
        ["bounce.acme.test", "Other.Test."],
        max_bytes=more.pop("max_bytes", 1000),
        rate_per_minute=more.pop("rate", 100),
    )


def _rcpt(handler, address, peer=("192.0.2.1", 4000)):
    envelope = SimpleNamespace(rcpt_tos=[])
    session = SimpleNamespace(peer=peer)
    reply = asyncio.run(handler.handle_RCPT(None, session, envelope, address, []))
    return reply, envelope


def test_it_accepts_only_bounce_addresses_of_its_domains_and_never_relays():
    handler = _handler()
    assert _rcpt(handler, "bounces+12-abc@bounce.acme.test")[0].startswith("250")
    assert _rcpt(handler, "BOUNCES@other.test")[0].startswith("250")
    for address in (
        "ann@bounce.acme.test",
        "bounces+1@example.com",
        "bouncesx@bounce.acme.test",
        "bounces@bounce.acme.test.evil.example",
        "a" * 400 + "@bounce.acme.test",
    ):
        reply, envelope = _rcpt(handler, address)
        assert reply.startswith("550 5.7.1"), address
        assert envelope.rcpt_tos == []


def test_it_slows_a_host_past_its_rate_down():
    handler = _handler(rate=3)
    replies = [_rcpt(handler, "bounces@bounce.acme.test")[0][:3] for _ in range(5)]
    assert replies == ["250", "250", "250", "450", "450"]
    assert _rcpt(handler, "bounces@bounce.acme.test", peer=("192.0.2.2", 1))[0].startswith("250")


def _data(handler, content):
    envelope = SimpleNamespace(
        rcpt_tos=["bounces@bounce.acme.test"], original_content=content, content=content
    )
    return asyncio.run(handler.handle_DATA(None, SimpleNamespace(peer=("x", 1)), envelope))


def test_it_refuses_a_message_over_the_size_limit():
    assert _data(_handler(max_bytes=100), b"x" * 101).startswith("552 5.3.4")


def test_it_answers_451_when_the_database_fails_so_the_mta_retries():
    handler = _handler()

    async def broken(content, recipients):
        raise OperationalError("database is locked")

    handler.store = broken
    assert _data(handler, b"Subject: x\r\n\r\nbody").startswith("451 4.3.0")


def test_it_answers_250_only_after_storing():
    handler = _handler()
    stored = []

    async def store(content, recipients):
        stored.append((content, recipients))

    handler.store = store
    assert _data(handler, b"Subject: x\r\n\r\nbody").startswith("250 2.0.0")
    assert stored == [(b"Subject: x\r\n\r\nbody", ["bounces@bounce.acme.test"])]


def test_it_stores_the_messages_of_sessions_waiting_together_in_one_commit(monkeypatch):
    groups = []
    monkeypatch.setattr(receiver, "store_received", lambda messages: groups.append(messages))
    monkeypatch.setattr(receiver, "close_old_connections", lambda: None)
    handler = _handler()

    async def sessions():
        await asyncio.gather(
            *(handler.store(f"m{i}".encode(), ["bounces@bounce.acme.test"]) for i in range(5))
        )

    asyncio.run(sessions())
    assert [len(g) for g in groups] == [5]  # all five answered after one transaction
    assert [m for m, _ in groups[0]] == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_it_answers_451_to_every_session_of_a_group_whose_commit_failed(monkeypatch):
    def broken(messages):
        raise OperationalError("database is locked")

    monkeypatch.setattr(receiver, "store_received", broken)
    monkeypatch.setattr(receiver, "close_old_connections", lambda: None)
    monkeypatch.setattr(receiver, "connection", SimpleNamespace(close=lambda: None))
    handler = _handler()

    async def sessions():
        envelope = SimpleNamespace(
            rcpt_tos=["bounces@bounce.acme.test"], original_content=b"x", content=b"x"
        )
        return await asyncio.gather(
            *(handler.handle_DATA(None, SimpleNamespace(peer=("x", 1)), envelope) for _ in range(3))
        )

    assert [r[:3] for r in asyncio.run(sessions())] == ["451", "451", "451"]
