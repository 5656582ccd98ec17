"""Engine and session factory; SQLite gets WAL, a busy timeout and write-ahead locking."""

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import Engine, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

CONNECT_TIMEOUT_SECONDS = 10
HOLDS_TURN = "accessbot.holds_turn"  # connection.info: this connection's transaction has it
BATCH = "accessbot.batch"  # session.info, inside batched_rows: (savepoint, {model: [rows]})


def make_engine(url: str, busy_timeout: float = 30.0,
                connect_timeout: float = CONNECT_TIMEOUT_SECONDS, writes_first: bool = False,
                **kwargs) -> Engine:
    """busy_timeout: how long a SQLite write waits for another's lock; connect_timeout: how
    long a Postgres connection attempt may take (the web process must answer in 3 s);
    writes_first: SQLite, its writes inside `writing_first(engine)` go before the other
    engines' transactions, in any process (FirstWriter)."""
    if url.startswith("sqlite"):
        for server_only in ("pool_size", "max_overflow"):
            kwargs.pop(server_only, None)  # one file, no server
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": busy_timeout}, **kwargs)
        _sqlite_serialised_writes(engine, busy_timeout, writes_first)
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


class FirstWriter:
    """SQLite: the acknowledgements' writes go first, on one host, across processes.

    SQLite gives its write lock to whoever asks at the right moment. The worker's threads
    ask again the moment one of them commits; the web process asks when its retry comes
    round (handlers/handoff.py), so in a busy moment an acknowledgement waited through
    dozens of the worker's transactions (30-60 ms in `make bench`). A lock file beside the
    database fixes the order: `first()` holds it exclusively while its writer waits for
    SQLite's lock and writes; every other engine's transaction passes through it, shared
    and at once released, before its BEGIN, so it waits instead of slipping in between.
    The kernel drops a dead process's hold.
    """

    def __init__(self, database: str):
        self._path = f"{database}-writers"

    def first(self) -> AbstractContextManager[None]:
        return self._locked(fcntl.LOCK_EX)

    def pass_through(self) -> None:
        with self._locked(fcntl.LOCK_SH):
            pass

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)  # its own: threads too
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # and with it the lock


_first_writers: weakref.WeakKeyDictionary[Engine, FirstWriter] = weakref.WeakKeyDictionary()


def writing_first(engine: Engine) -> AbstractContextManager[None]:
    """Around a write that must not wait behind other processes' transactions: the engine
    must be made with writes_first (SQLite on a file; elsewhere this does nothing)."""
    writer = _first_writers.get(engine)
    return writer.first() if writer else nullcontext()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: Callable[[], Session]) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on error."""
    with sessions() as session, session.begin():
        yield session


def add_row(session: Session, model: type, **values) -> None:
    """Insert a row that this transaction does not read back as an object (an owed message,
    an audit event): by the unit of work, or inside `batched_rows` with the other rows of
    its table, in one statement."""
    batch = session.info.get(BATCH)
    if batch is None:
        session.add(model(**values))
        return
    savepoint, rows = batch
    if session.get_nested_transaction() is not savepoint:
        raise RuntimeError("batched_rows: a savepoint began inside the batch, and its rollback "
                           "could not take the batch's rows back")
    rows.setdefault(model, []).append(values)


@contextmanager
def batched_rows(session: Session) -> Iterator[None]:
    """The rows `add_row` adds inside are written when the block ends without error, one
    INSERT per table, in the order they were added (and after every row added before the
    block). The unit of work constructs, tracks and flushes each object and fetches its id:
    about 0.1 ms of CPU a row; 100 decisions write 400 rows besides their grants.
    Nothing inside may read them back, nor begin a savepoint."""
    if BATCH in session.info:  # inside another batch: that one writes them
        yield
        return
    session.flush()  # rows added earlier keep their place in the id order
    rows: dict[type, list[dict]] = {}
    session.info[BATCH] = (session.get_nested_transaction(), rows)
    try:
        yield
    finally:
        del session.info[BATCH]
    connection = session.connection()
    for model, batch in rows.items():
        connection.execute(insert(model), batch)


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


def _sqlite_serialised_writes(engine: Engine, busy_timeout: float,
                              writes_first: bool) -> None:
    """Take SQLite's write lock at BEGIN, so a read-then-write never fails half way.

    pysqlite's own transaction handling starts transactions lazily, which turns a
    compare-and-set into 'database is locked' under concurrency. See SQLAlchemy's
    "Serializable isolation / Savepoints / Transactional DDL" recipe for pysqlite.
    busy_timeout=0 leaves the waiting to the caller (handlers/handoff.py).
    """
    on_file = engine.url.database not in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if on_file:
            _wal(cursor, busy_timeout)
        cursor.close()

    # SQLite's own wait for its lock sleeps up to 100 ms at a time, through most moments
    # the lock is free: the threads of one process queue here instead, in turn, and meet
    # SQLite's wait only for another process's transaction.
    turn = threading.Lock()
    first_writer = FirstWriter(engine.url.database) if on_file else None
    if first_writer is not None and writes_first:
        _first_writers[engine] = first_writer

    @event.listens_for(engine, "begin")
    def _begin(connection):
        if first_writer is not None and not writes_first:
            first_writer.pass_through()  # an acknowledgement waiting for the lock goes first
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
