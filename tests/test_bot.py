"""Composition-root details that are not worth a process of their own."""

import threading
import time

import pytest

from bot import _sleep_unless
from services.ports import ReportNotReady


def test_waiting_for_the_credential_report_ends_when_the_bot_stops():
    stopping = threading.Event()
    sleep = _sleep_unless(stopping)
    sleep(0.01)  # an ordinary wait while running
    threading.Timer(0.05, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(ReportNotReady):
        sleep(30)
    assert time.monotonic() - started < 5
