"""Engine and session factory; SQLite gets WAL, a busy timeout and write-ahead locking."""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

CONNECT_TIMEOUT_SECONDS = 10
HOLDS_TURN = "accessbot.holds_turn"  # connection.info: this connection's transaction has it


def make_engine(url: str, busy_timeout: float = 30.0,
                connect_timeout: float = CONNECT_TIMEOUT_SECONDS, **kwargs) -> Engine:
    """busy_timeout: how long a SQLite write waits for another's lock; connect_timeout: how
    long a Postgres connection attempt may take (the web process must answer in 3 s)."""
    if url.startswith("sqlite"):
        for server_only in ("pool_size", "max_overflow"):
            kwargs.pop(server_only, None)  # one file, no server
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": busy_timeout}, **kwargs)
        _sqlite_serialised_writes(engine, busy_timeout)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    # A pooled connection that a Postgres restart cut is found at checkout and replaced
    # (tests/models/test_session.py); no retry is needed on top, nor pool_recycle.
    kwargs.setdefault("pool_pre_ping", True)
    if "connect_timeout" not in make_url(url).query:
        # A server that does not answer (an address moved in a failover) fails a connection
        # attempt in seconds, not after the kernel's two minutes of SYN retries.
        kwargs["connect_args"] = {"connect_timeout": max(1, round(connect_timeout)),
                                  **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: Callable[[], Session]) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on error."""
    with sessions() as session, session.begin():
        yield session


def _wal(cursor, busy_timeout: float) -> None:
    """PRAGMA journal_mode=WAL, waiting for another process's transaction like any
    statement would: on a new database file (still in rollback mode) whose write lock
    another process holds, SQLite refuses the switch at once, without its busy wait
    (replicas migrating a new file together met it)."""
    deadline = time.monotonic() + max(busy_timeout, 1.0)
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_serialised_writes(engine: Engine, busy_timeout: float) -> None:
    """Take SQLite's write lock at BEGIN, so a read-then-write never fails half way.

    pysqlite's own transaction handling starts transactions lazily, which turns a
    compare-and-set into 'database is locked' under concurrency. See SQLAlchemy's
    "Serializable isolation / Savepoints / Transactional DDL" recipe for pysqlite.
    busy_timeout=0 leaves the waiting to the caller (handlers/handoff.py).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if engine.url.database not in (None, "", ":memory:"):
            _wal(cursor, busy_timeout)
        cursor.close()

    # SQLite's own wait for its lock sleeps up to 100 ms at a time, through most moments
    # the lock is free: the threads of one process queue here instead, in turn, and meet
    # SQLite's wait only for another process's transaction.
    turn = threading.Lock()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        if not turn.acquire(timeout=max(busy_timeout, 1.0)):
            raise OperationalError("BEGIN IMMEDIATE", None,
                                   sqlite3.OperationalError("database is locked"))
        connection.info[HOLDS_TURN] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _end(connection, None)
            raise

    def _end(connection, statement: str | None) -> None:
        """COMMIT or ROLLBACK now (the driver's own call after this hook is then a no-op),
        so that the next thread's BEGIN finds the lock free; then give up the turn."""
        if not connection.info.pop(HOLDS_TURN, False):
            return
        try:
            if statement is not None and connection.connection.dbapi_connection.in_transaction:
                connection.connection.dbapi_connection.execute(statement)
        finally:
            turn.release()

    event.listen(engine, "commit", lambda connection: _end(connection, "COMMIT"))
    event.listen(engine, "rollback", lambda connection: _end(connection, "ROLLBACK"))
