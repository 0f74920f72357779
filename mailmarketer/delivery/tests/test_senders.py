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
