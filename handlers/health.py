"""The web process's operational endpoints: liveness, readiness, metrics.

GET /healthz  liveness, cheap: 200 while this process serves (no database query)
GET /readyz   readiness: 503 while the database does not answer or the worker is down
GET /metrics  Prometheus text: both processes' samples, and the inbox and outbox depths
"""

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine

log = logging.getLogger(__name__)

# (table, metric name) of the durable queues whose depth and oldest row are reported
QUEUES = (("inbox", "accessbot_inbox"), ("outbox", "accessbot_outbox"))


def _read(engine: Engine, sql: str) -> list[tuple]:
    """A read on a plain DBAPI connection: no transaction, so never SQLite's write lock
    (the web process's engine does not wait for it)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        cursor.close()
        return rows
    finally:
        connection.close()


def database_answers(engine: Engine) -> bool:
    try:
        _read(engine, "SELECT 1")
        return True
    except Exception as exc:  # noqa: BLE001 - any driver or pool error means "not ready"
        log.warning("readiness: database unreachable: %s", exc)
        return False


class QueueDepths:
    """A collector: pending rows and the age of the oldest, read when scraped."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        now = time.time()
        for table, name in QUEUES:
            try:
                [(count, first)] = _read(self.engine, f"SELECT count(*), min(created_at) "
                                                      f"FROM {table} WHERE status = 'PENDING'")
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                log.warning("metrics: cannot read the %s: %s", table, exc)
                continue
            depth = GaugeMetricFamily(f"{name}_depth", f"Pending rows in the {table}")
            depth.add_metric([], count)
            oldest = GaugeMetricFamily(f"{name}_oldest_seconds",
                                       f"Age of the oldest pending row in the {table}")
            oldest.add_metric([], now - _timestamp(first) if first is not None else 0.0)
            yield depth
            yield oldest


def _timestamp(value: datetime | str) -> float:
    """A stored UTC time as seconds (SQLite keeps it as naive text, Postgres as timestamptz)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def metrics_text(engine: Engine) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    registry.register(QueueDepths(engine))
    return generate_latest(registry)


def ready(worker_running: Callable[[], bool], socket_connected: Callable[[], bool],
          engine: Engine) -> dict[str, bool]:
    return {"worker": worker_running(), "slack": socket_connected(),
            "database": database_answers(engine)}
