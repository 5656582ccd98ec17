"""Composition-root details that are not worth a process of their own."""

import threading
import time

import pytest

from bot import _sleep_unless
from services.ports import ReportNotReady
from tests.fakes.harness import free_port, run_bot_command


def test_waiting_for_the_credential_report_ends_when_the_bot_stops():
    stopping = threading.Event()
    sleep = _sleep_unless(stopping)
    sleep(0.01)  # an ordinary wait while running
    threading.Timer(0.05, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(ReportNotReady):
        sleep(30)
    assert time.monotonic() - started < 5


def test_a_database_that_does_not_answer_stops_the_start_in_one_line():
    port = free_port()  # nothing listens there
    url = f"postgresql://accessbot:s3cret-pw@127.0.0.1:{port}/accessbot"
    result = run_bot_command({"DATABASE_URL": url}, "migrate", timeout=30)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"accessbot: configuration error: DATABASE_URL (127.0.0.1:{port}/"
                           "accessbot): connection failed:")
    assert "s3cret-pw" not in result.stderr + result.stdout
