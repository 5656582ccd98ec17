"""What makes way for revocations in the worker."""

import threading
import time

from accessbot.jobs.background import RevocationsFirst


def test_the_sender_waits_while_grants_are_revoked_and_goes_when_they_are():
    revocations = RevocationsFirst(hold=5.0)
    started = time.monotonic()
    revocations.hold()  # nothing is being revoked: at once
    assert time.monotonic() - started < 1

    waited = []
    with revocations.running():
        with revocations.running():  # two groups at once (two timers' batches)
            sender = threading.Thread(target=lambda: (revocations.hold(),
                                                      waited.append(time.monotonic())))
            sender.start()
            time.sleep(0.05)
        time.sleep(0.05)
        assert waited == []  # one group still runs
        ended = time.monotonic()
    sender.join(5)
    assert waited and ended <= waited[0] < ended + 1  # it went when the last group ended


def test_revocations_that_never_stop_hold_the_sender_once_not_at_every_turn():
    now = [100.0]
    revocations = RevocationsFirst(hold=1.0, clock=lambda: now[0])
    with revocations.running():
        now[0] += 0.4
        with revocations.running():  # the next group, before the first ended: one stretch
            now[0] += 0.7  # 1.1 s since the stretch began
            started = time.monotonic()
            revocations.hold()
            assert time.monotonic() - started < 0.5  # waited its second already: goes


def test_a_stretch_of_revocations_holds_the_sender_only_so_long():
    revocations = RevocationsFirst(hold=0.05)
    with revocations.running():
        started = time.monotonic()
        revocations.hold()
        assert 0.04 <= time.monotonic() - started < 5


def test_a_failed_revocation_lets_the_sender_go():
    revocations = RevocationsFirst(hold=5.0)
    try:
        with revocations.running():
            raise RuntimeError("a bug in a revocation")
    except RuntimeError:
        pass
    started = time.monotonic()
    revocations.hold()
    assert time.monotonic() - started < 1
