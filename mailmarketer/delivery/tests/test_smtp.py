"""The SMTP client against a real SMTP server on loopback (ScriptedSmtpServer, aiosmtpd)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mailmarketer.delivery.smtp import (
    Outgoing,
    PermanentError,
    RelayBroken,
    SmtpConfig,
    SmtpConnection,
    StaleConnection,
    TransientError,
    prepare_data,
)
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer

TIMEOUT = 20  # no test here may hang longer than this


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def message(i: int, rcpt: str | None = None, body: bytes | None = None) -> Outgoing:
    rcpt = rcpt or f"r{i}@example.org"
    data = (
        f"From: news@acme.example\r\nTo: {rcpt}\r\nSubject: n{i}\r\n"
        f"Message-ID: <{i}.c@acme.example>\r\n\r\n"
    ).encode() + (body if body is not None else b"Hello\r\n.a dot line\r\n.\r\n..two\r\nend\r\n")
    return Outgoing(key=i, mail_from="bounces+t@acme.example", rcpt=rcpt, data=data)


async def send(config: SmtpConfig, messages: list[Outgoing]):
    async with SmtpConnection(config) as conn:
        results = await conn.send_batch(messages)
        return results, conn.connected


def config_for(server: ScriptedSmtpServer, **kwargs) -> SmtpConfig:
    kwargs.setdefault("tls_mode", "none")
    kwargs.setdefault("timeout", 5)
    return SmtpConfig("127.0.0.1", server.port, **kwargs)


@pytest.fixture
def server():
    with ScriptedSmtpServer(trace=True) as s:
        yield s


@pytest.fixture
def plain_server():
    with ScriptedSmtpServer(trace=True, pipelining=False) as s:
        yield s


def test_it_pipelines_a_batch_and_every_message_arrives_intact(server):
    messages = [message(i) for i in range(20)]
    results, connected = run(send(config_for(server), messages))

    assert [r.key for r in results] == list(range(20))
    assert all(r.ok and r.code == 250 and r.error is None for r in results)
    assert connected
    assert [m.rcpt_tos for m in server.messages] == [[m.rcpt] for m in messages]
    # Dot-stuffing undone by the server: the lines starting with a dot arrive as written.
    assert [m.data for m in server.messages] == [m.data for m in messages]
    assert all(m.mail_from == "bounces+t@acme.example" for m in server.messages)
    # PIPELINING: a message's MAIL, RCPT (and the DATA before them) came in one piece, and the
    # end of each message travelled with the next envelope: one round trip per message.
    chunks = {}
    for _conn, chunk, command in server.transcript:
        chunks.setdefault(command, []).append(chunk)
    assert chunks["MAIL"] == chunks["RCPT"]
    assert chunks["DATA"][:-1] == chunks["MAIL"][1:]


def test_it_sends_one_command_at_a_time_without_pipelining(plain_server):
    results, _ = run(send(config_for(plain_server), [message(i) for i in range(3)]))

    assert all(r.ok for r in results)
    assert len(plain_server.messages) == 3
    mail = [chunk for _, chunk, cmd in plain_server.transcript if cmd == "MAIL"]
    rcpt = [chunk for _, chunk, cmd in plain_server.transcript if cmd == "RCPT"]
    assert all(r > m for m, r in zip(mail, rcpt, strict=True))


@pytest.mark.parametrize("pipelining", [True, False])
def test_it_reports_each_refusal_and_delivers_the_rest(pipelining):
    with ScriptedSmtpServer(trace=True, pipelining=pipelining) as server:
        server.script(
            {
                "gone@example.org": "550 5.1.1 <gone@example.org>: no such user",
                "busy@example.org": "451 4.3.0 try again later",
                "policy@example.org": "550 5.7.1 rejected by policy",
            }
        )
        server.script({"big@example.org": "552 5.3.4 message too big"}, stage="data")
        rcpts = ["a", "gone", "b", "busy", "c", "policy", "big", "d"]
        messages = [message(i, f"{r}@example.org") for i, r in enumerate(rcpts)]
        results, connected = run(send(config_for(server), messages))

    by_rcpt = dict(zip(rcpts, results, strict=True))
    for ok in ("a", "b", "c", "d"):
        assert by_rcpt[ok].ok, by_rcpt[ok]
    gone = by_rcpt["gone"].error
    assert isinstance(gone, PermanentError) and gone.code == 550 and gone.command == "RCPT"
    assert gone.hard_bounce
    assert by_rcpt["gone"].reply == "5.1.1 <gone@example.org>: no such user"
    assert isinstance(by_rcpt["busy"].error, TransientError) and by_rcpt["busy"].code == 451
    policy = by_rcpt["policy"].error
    assert isinstance(policy, PermanentError) and not policy.hard_bounce
    big = by_rcpt["big"].error
    assert isinstance(big, PermanentError) and big.command == "BODY" and not big.hard_bounce
    assert connected
    assert server.recipients == [f"{r}@example.org" for r in ("a", "b", "c", "d")]
    # Each refused RCPT was followed by RSET before the next transaction.
    commands = [cmd for _, _, cmd in server.transcript]
    assert commands.count("RSET") == 3


def test_it_sends_only_the_final_dot_when_a_server_says_354_after_a_refused_rcpt():
    with ScriptedSmtpServer(trace=True, data_without_recipients=True) as server:
        server.script({"r1@example.org": "550 5.1.1 no such user"})
        results, connected = run(send(config_for(server), [message(i) for i in range(3)]))

    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error.command == "RCPT" and results[1].error.hard_bounce
    assert connected
    assert server.recipients == ["r0@example.org", "r2@example.org"]
    assert [cmd for _, _, cmd in server.transcript].count("EMPTY-DATA") == 1


def test_it_marks_the_rest_transient_when_the_server_closes_with_421(server):
    server.script({"r2@example.org": "421 4.7.0 too many messages, closing"})
    results, connected = run(send(config_for(server), [message(i) for i in range(6)]))

    assert [r.ok for r in results] == [True, True, False, False, False, False]
    assert all(isinstance(r.error, TransientError) and r.code == 421 for r in results[2:])
    assert not connected
    assert len(server.messages) == 2


def test_it_marks_unacknowledged_messages_transient_when_the_connection_drops(server):
    server.drop_after(3)
    config = config_for(server)

    async def scenario():
        conn = SmtpConnection(config)
        await conn.connect()
        first = await conn.send_batch([message(i) for i in range(8)])
        dropped = not conn.connected
        await conn.close()  # on a dead session: must not raise
        await conn.connect()
        second = await conn.send_batch([message(i) for i in range(3, 8)])
        await conn.close()
        return first, dropped, second

    first, dropped, second = run(scenario())

    assert [r.ok for r in first] == [True] * 3 + [False] * 5
    assert all(isinstance(r.error, TransientError) and r.code == 0 for r in first[3:])
    assert dropped
    assert all(r.ok for r in second)
    assert server.recipients == [f"r{i}@example.org" for i in range(8)]
    assert server.connections == 2


def test_it_drops_the_session_when_a_batch_is_cancelled_mid_conversation(server):
    # A slow server: it takes a second over r1's RCPT (blocking its own thread, not ours).
    server.script(lambda rcpt: time.sleep(1) if rcpt == "r1@example.org" else None)

    async def scenario():
        conn = SmtpConnection(config_for(server))
        await conn.connect()
        task = asyncio.create_task(conn.send_batch([message(0), message(1)]))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return conn.connected

    assert run(scenario()) is False


def test_it_refuses_a_message_over_the_size_limit_without_sending_it():
    with ScriptedSmtpServer(size_limit=2000) as server:
        big = Outgoing(1, "b@acme.example", "r1@example.org", b"x" * 3000 + b"\r\n")
        messages = [message(0), big, message(2)]
        results, _ = run(send(config_for(server), messages))

    assert results[0].ok and results[2].ok
    error = results[1].error
    assert isinstance(error, PermanentError) and error.command == "SIZE"
    assert not error.hard_bounce
    assert "3002 bytes" in error.message and "2000" in error.message
    assert server.recipients == ["r0@example.org", "r2@example.org"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rcpt", "a@example.org>\r\nRCPT TO:<victim@example.org"),
        ("rcpt", "a@example.org\nDATA"),
        ("rcpt", "a b@example.org"),
        ("rcpt", "<a@example.org>"),
        ("rcpt", "a@example.org\x00"),
        ("rcpt", "ü@example.org"),
        ("rcpt", ""),
        ("mail_from", "x@acme.example> SIZE=1\r\nRSET"),
    ],
)
def test_it_refuses_addresses_that_could_inject_commands_before_sending_anything(
    server, field, value
):
    good = message(0)
    bad = dataclasses.replace(message(1), **{field: value})

    with pytest.raises(ValueError, match="message 1") as excinfo:
        run(send(config_for(server), [good, bad]))

    assert field in str(excinfo.value)
    assert server.messages == []


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: x\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@x>\r\n",  # bare LF before the dot
        b"Subject: x\r\n\r\nfirst\r\n.\nRCPT TO:<evil@x>\r\n",
        b"Subject: x\r\n\r\nfirst\r.\r\n",  # bare CR
    ],
)
def test_it_refuses_data_with_bare_cr_or_lf_that_could_smuggle_a_message(server, data):
    with pytest.raises(ValueError, match="bare CR or LF"):
        run(send(config_for(server), [Outgoing(0, "a@acme.example", "b@example.org", data)]))
    assert server.messages == []


def test_it_dot_stuffs_and_terminates_data():
    assert prepare_data(b"a\r\n.b\r\n") == b"a\r\n..b\r\n.\r\n"
    assert prepare_data(b".start\r\nend") == b"..start\r\nend\r\n.\r\n"
    assert prepare_data(b"x\r\n.\r\n") == b"x\r\n..\r\n.\r\n"


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_it_sends_over_tls_with_the_certificate_verified(mode):
    with ScriptedSmtpServer(tls=mode, auth=("mm", "s3cret ü")) as server:
        config = config_for(
            server, tls_mode=mode, ca_file=str(server.cert_path), username="mm", password="s3cret ü"
        )
        results, _ = run(send(config, [message(0), message(1)]))

    assert all(r.ok for r in results)
    assert len(server.messages) == 2


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_it_treats_an_untrusted_certificate_as_a_broken_relay(mode):
    with ScriptedSmtpServer(tls=mode) as server:
        with pytest.raises(RelayBroken, match="certificate"):
            run(send(config_for(server, tls_mode=mode), [message(0)]))
        # The same server with verification turned off (an explicit choice) works.
        results, _ = run(
            send(config_for(server, tls_mode=mode, verify_certificate=False), [message(0)])
        )
    assert results[0].ok


def test_it_treats_a_certificate_for_another_name_as_a_broken_relay():
    # The certificate names localhost and 127.0.0.1 and is trusted (ca_file), but the server
    # is reached as 127.0.0.2: a man in the middle with someone else's certificate.
    with ScriptedSmtpServer(tls="implicit", host="127.0.0.2") as server:
        config = SmtpConfig(
            "127.0.0.2", server.port, "implicit", ca_file=str(server.cert_path), timeout=5
        )
        with pytest.raises(RelayBroken, match="certificate"):
            run(send(config, [message(0)]))
        assert server.messages == []


def test_it_refuses_to_go_on_without_starttls_when_starttls_is_required(server):
    with pytest.raises(RelayBroken, match="STARTTLS"):
        run(send(config_for(server, tls_mode="starttls"), [message(0)]))
    assert server.messages == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_it_authenticates_with_the_mechanism_offered(mechanism):
    with ScriptedSmtpServer(auth=("mm", "pw"), auth_mechanisms=(mechanism,)) as server:
        config = config_for(server, username="mm", password="pw")
        results, _ = run(send(config, [message(0)]))
    assert results[0].ok


def test_it_treats_refused_credentials_as_a_broken_relay():
    with ScriptedSmtpServer(auth=("mm", "pw")) as server:
        with pytest.raises(RelayBroken, match="authentication refused") as excinfo:
            run(send(config_for(server, username="mm", password="wrong"), [message(0)]))
        assert excinfo.value.code == 535
        assert server.messages == []


def test_it_reports_a_relay_that_wants_authentication_we_did_not_give_as_broken():
    with ScriptedSmtpServer(auth=("mm", "pw")) as server:
        results, _ = run(send(config_for(server), [message(0), message(1)]))
    assert all(isinstance(r.error, RelayBroken) and r.code == 530 for r in results)


def test_it_falls_back_to_helo_when_ehlo_is_refused(server):
    server.script({"*": "502 5.5.1 EHLO not implemented"}, stage="ehlo")

    async def scenario():
        async with SmtpConnection(config_for(server)) as conn:
            return conn.supports_pipelining, await conn.send_batch([message(0), message(1)])

    pipelining, results = run(scenario())
    assert not pipelining
    assert all(r.ok for r in results)


def test_it_treats_ehlo_and_helo_refused_as_a_broken_relay(server):
    server.script({"*": "550 5.7.1 go away"}, stage="ehlo")
    server.script({"*": "550 5.7.1 go away"}, stage="helo")
    with pytest.raises(RelayBroken, match="EHLO and HELO refused"):
        run(send(config_for(server), [message(0)]))


def test_it_reports_a_refused_connection_as_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the connection is refused
        with pytest.raises(TransientError, match="cannot talk to"):
            run(send(SmtpConfig("127.0.0.1", port, "none", timeout=5), [message(0)]))


def test_it_gives_up_on_a_server_that_never_greets_within_the_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # the kernel accepts the connection; nobody ever speaks
        config = SmtpConfig("127.0.0.1", sock.getsockname()[1], "none", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"did not answer within 0\.5 s"):
            run(send(config, [message(0)]))
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("code", "text", "command", "hard"),
    [
        (550, "5.1.1 <a@b>: Recipient address rejected: User unknown", "RCPT", True),
        (550, "5.1.2 bad destination system address", "RCPT", True),
        (553, "5.1.3 bad address syntax", "RCPT", True),
        (554, "5.1.10 null MX", "BODY", True),
        (550, "mailbox unavailable", "RCPT", True),
        (551, "user not local", "RCPT", True),
        (553, "mailbox name not allowed", "RCPT", True),
        (550, "5.7.1 message rejected as spam", "RCPT", False),
        (552, "5.2.2 mailbox full", "RCPT", False),
        (550, "5.2.1 mailbox disabled", "RCPT", False),
        (550, "message rejected as spam", "BODY", False),
        (554, "transaction failed", "RCPT", False),
        (553, "5.1.8 sender domain does not exist", "RCPT", False),
        (550, "5.1.1 sender unknown", "MAIL", False),
        (552, "message too large", "SIZE", False),
    ],
)
def test_it_calls_only_a_bad_address_a_hard_bounce(code, text, command, hard):
    assert PermanentError(text, code, command=command).hard_bounce is hard


def test_it_refuses_a_bad_configuration_with_the_field_named():
    with pytest.raises(ValueError, match="tls_mode"):
        SmtpConfig("h", 25, "ssl")
    with pytest.raises(ValueError, match="port"):
        SmtpConfig("h", 0, "none")
    with pytest.raises(ValueError, match="password was given without a username"):
        SmtpConfig("h", 25, "none", password="x")
    with pytest.raises(ValueError, match="username contains CR"):
        SmtpConfig("h", 25, "none", username="a\r\nb")


@pytest.mark.slow
def test_it_serves_from_another_process_and_logs_each_accepted_recipient(tmp_path):
    log = tmp_path / "received.tsv"
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"rcpt": {"gone@example.org": "550 5.1.1 no such user"}}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailmarketer.delivery.testing.smtpd",
            "--log",
            str(log),
            "--script",
            str(script),
            "--save",
            str(tmp_path / "saved"),
            "--max-seconds",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = process.stdout.readline()  # bounded by --max-seconds if the server hangs
        assert ready.startswith("ready ")
        port = int(ready.split()[1])
        rcpts = ["a@example.org", "gone@example.org", "b@example.org"]
        results, _ = run(
            send(
                SmtpConfig("127.0.0.1", port, "none", timeout=5),
                [message(i, r) for i, r in enumerate(rcpts)],
            )
        )
        assert [r.ok for r in results] == [True, False, True]
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
    assert (
        log.read_text() == "a@example.org\t<0.c@acme.example>\nb@example.org\t<2.c@acme.example>\n"
    )
    saved = sorted((tmp_path / "saved").iterdir())
    assert [p.name for p in saved] == ["1.eml", "2.eml"]
    assert saved[1].read_bytes() == message(2, "b@example.org").data


@pytest.mark.slow
def test_it_stops_by_itself_when_its_parent_dies(tmp_path):
    # A shell starts the server in the background and is then killed: the orphaned server
    # notices the new parent and exits instead of serving forever.
    ready = tmp_path / "ready.txt"
    shell = subprocess.Popen(
        [
            "sh",
            "-c",
            f'"{sys.executable}" -m mailmarketer.delivery.testing.smtpd --max-seconds 60 '
            f'> "{ready}" & echo $!; wait',
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    server_pid = None
    try:
        server_pid = int(shell.stdout.readline())
        deadline = time.monotonic() + 15
        while not _read(ready).startswith("ready") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _read(ready).startswith("ready")
        shell.kill()
        shell.wait(10)
        deadline = time.monotonic() + 10
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(server_pid)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait(10)
        if server_pid is not None and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
        shell.stdout.close()


def _read(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_it_leaves_the_rest_of_a_batch_after_five_temporary_refusals_in_a_row(server):
    server.script({"*": "450 4.7.1 Service unavailable"})
    messages = [message(i) for i in range(12)]

    async def twice():
        async with SmtpConnection(config_for(server)) as conn:
            first = await conn.send_batch(messages)
            server.script(None)
            return first, await conn.send_batch(messages[:2])

    first, second = run(twice())
    assert [r.code for r in first[:5]] == [450] * 5
    assert all(r.reply.startswith("not tried:") for r in first[5:])
    assert all(isinstance(r.error, TransientError) for r in first)
    assert len([cmd for _, _, cmd in server.transcript if cmd == "RCPT"]) == 5 + 2
    assert all(r.ok for r in second)  # the session was left clean


def test_it_refuses_the_whole_batch_when_the_relay_refuses_our_sender(server):
    server.script({"*": "501 5.1.7 Bad sender address syntax"}, stage="mail")
    results, connected = run(send(config_for(server), [message(i) for i in range(4)]))
    assert all(isinstance(r.error, RelayBroken) and r.code == 501 for r in results)
    assert len([cmd for _, _, cmd in server.transcript if cmd == "MAIL"]) == 1
    assert connected


def test_it_tells_a_connection_that_died_idle_from_one_lost_mid_batch(server):
    async def after_hang_up():
        async with SmtpConnection(config_for(server)) as conn:
            await conn.send_batch([message(0)])
            server.hang_up_all()
            with pytest.raises(StaleConnection):
                await conn.send_batch([message(1), message(2)])
            assert not conn.connected

    run(after_hang_up())
    assert server.recipients == ["r0@example.org"]


def test_it_loses_the_connection_when_a_reply_does_not_come_within_the_timeout(server):
    # The server sits on r1's RCPT for 1.5 s (blocking its own thread, not ours); timeout 0.5 s.
    server.script(lambda rcpt: time.sleep(1.5) if rcpt == "r1@example.org" else None)

    started = time.monotonic()
    results, connected = run(send(config_for(server, timeout=0.5), [message(i) for i in range(4)]))

    assert time.monotonic() - started < 1.4  # given up at the timeout, not after the reply
    assert results[0].ok
    for result in results[1:]:
        assert isinstance(result.error, TransientError) and result.code == 0
        assert result.reply == "no reply from 127.0.0.1 within 0.5 s"
    assert not connected


def test_its_timeout_counts_from_each_wait_not_from_the_batch(server):
    # Every RCPT takes 0.3 s: each round trip is within the 0.5 s timeout, the batch is not.
    server.script(lambda rcpt: time.sleep(0.3))

    results, connected = run(send(config_for(server, timeout=0.5), [message(i) for i in range(5)]))

    assert all(r.ok for r in results)
    assert connected


def _replies_of(*chunks: bytes):
    """A reply reader (the client's protocol) fed `chunks` as reads; its replies and failure."""
    from mailmarketer.delivery.smtp import _Replies

    async def feed():
        replies = _Replies(SmtpConfig("relay.example", 25, "none"))
        for chunk in chunks:
            buffer = replies.get_buffer(-1)
            buffer[: len(chunk)] = chunk
            replies.buffer_updated(len(chunk))
        return list(replies.replies), replies.failure

    return asyncio.run(feed())


def test_it_reads_replies_split_anywhere_across_reads_and_multi_line_replies():
    replies, failure = _replies_of(
        b"25", b"0 2.0.0 Ok\r\n250-first\r", b"\n250-sec", b"ond\r\n250 "
    )
    assert replies == [(250, "2.0.0 Ok")] and failure is None
    replies, failure = _replies_of(b"250 a\r\n354 b\r\n250-x\r\n250 y\r\n", b"550 5.1.1 no\r\n")
    assert replies == [(250, "a"), (354, "b"), (250, "x\ny"), (550, "5.1.1 no")]
    assert failure is None


def test_it_keeps_the_replies_before_a_421_or_garbage_and_nothing_after():
    replies, failure = _replies_of(b"250 ok\r\n421 4.4.2 closing\r\n250 late\r\n")
    assert replies == [(250, "ok")]
    assert isinstance(failure, TransientError) and failure.code == 421
    replies, failure = _replies_of(b"250 ok\r\nHTTP/1.1 400 Bad Request\r\n250 late\r\n")
    assert replies == [(250, "ok")]
    assert "not an SMTP reply" in str(failure)
    # A line without its end past 64 KiB (read 16 KiB at a time) is not a reply either.
    replies, failure = _replies_of(b"250 ok\r\n", b"250-", *[b"y" * 16000] * 5)
    assert replies == [(250, "ok")]
    assert "not an SMTP reply" in str(failure)
