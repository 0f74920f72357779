from mailmarketer.delivery.senders import Breaker, BreakerState


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_it_half_opens_after_its_wait_and_doubles_it_up_to_the_maximum(settings):
    settings.DELIVERY_PROBE_MAX_S = 3
    clock = Clock()
    breaker = Breaker(clock)
    assert breaker.state is BreakerState.CLOSED
    waits = []
    for _ in range(4):
        opened = clock.now
        breaker.trip("421 4.3.2 shutting down")
        assert breaker.state is BreakerState.OPEN
        while breaker.state is BreakerState.OPEN:
            clock.now += 0.5
        waits.append(clock.now - opened)
        assert breaker.state is BreakerState.HALF_OPEN  # one probe may go
    assert waits == [1.0, 2.0, 3.0, 3.0]
    breaker.succeed()
    assert breaker.state is BreakerState.CLOSED
    breaker.trip("451 later")
    clock.now += 1.0
    assert breaker.state is BreakerState.HALF_OPEN  # a success starts the waits over


class _Server:
    pk = 1
    name = "test"
    host = "127.0.0.1"
    tls_mode = "none"
    verify_certificate = False
    username = ""
    password = ""
    max_connections = 2

    def __init__(self, port):
        self.port = port


def _messages(n):
    from mailmarketer.delivery.smtp import Outgoing

    body = b"Subject: hi\r\n\r\n" + b"hello\r\n" * 20
    return [
        Outgoing(key=i, mail_from="b@example.com", rcpt=f"p{i}@example.org", data=body)
        for i in range(n)
    ]


def test_it_runs_the_work_it_is_given_while_the_messages_are_on_the_wire():
    from mailmarketer.delivery.senders import SmtpSender
    from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer

    with ScriptedSmtpServer() as relay:
        sender = SmtpSender(_Server(relay.port))
        try:
            steps = []

            def work():
                for i in range(30):
                    steps.append(i)
                    yield

            results = sender.send(_messages(20), meanwhile=work())
            assert [r.ok for r in results] == [True] * 20
            assert [r.key for r in results] == list(range(20))
            # All of it ran, also what was left when the relay had answered every message.
            assert steps == list(range(30))
            # Nothing to send: the work still runs.
            steps.clear()
            assert sender.send([], meanwhile=work()) == []
            assert len(steps) == 30
        finally:
            sender.close()
        assert len(relay.messages) == 20


def test_work_that_fails_while_messages_are_on_the_wire_stops_the_batch_and_raises():
    import pytest

    from mailmarketer.delivery.senders import SmtpSender
    from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer

    with ScriptedSmtpServer() as relay:
        sender = SmtpSender(_Server(relay.port))
        try:

            def work():
                yield
                raise RuntimeError("building failed")

            with pytest.raises(RuntimeError, match="building failed"):
                sender.send(_messages(20), meanwhile=work())
            # The connections of the stopped batch are not reused; the next batch goes out.
            results = sender.send(_messages(3))
            assert [r.ok for r in results] == [True] * 3
        finally:
            sender.close()
