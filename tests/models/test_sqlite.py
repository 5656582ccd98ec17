"""SQLite's write transactions: the threads of one process take turns; nothing leaks a turn."""

import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from accessbot.models import make_engine


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "turns.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout=0.3)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    yield engine, path
    engine.dispose()


def count(engine) -> int:
    with engine.begin() as connection:
        return connection.execute(text("SELECT n FROM counter")).scalar_one()


def test_threads_of_one_process_write_in_turn_and_none_is_refused(database):
    engine, _ = database
    errors = []

    def add_many():
        for _ in range(25):
            try:
                with engine.begin() as connection:  # read, then write: a lost update if
                    n = connection.execute(text("SELECT n FROM counter")).scalar_one()
                    connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
            except OperationalError as exc:  # two ran at once
                errors.append(exc)

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert count(engine) == 200


def test_a_rolled_back_transaction_gives_up_its_turn(database):
    engine, _ = database
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("UPDATE counter SET n = 5"))
        raise RuntimeError("the use case failed")
    assert count(engine) == 0  # rolled back, and the next transaction had its turn


def test_a_begin_refused_by_another_process_gives_up_its_turn(database):
    engine, path = database
    other = sqlite3.connect(path, isolation_level=None)  # as another process would
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"), engine.begin() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert count(engine) == 0


def test_a_new_database_waits_for_another_process_before_it_switches_to_wal(tmp_path):
    """On a file still in rollback mode, SQLite refuses the WAL switch at once while another
    process writes (two replicas migrating a new database together met it)."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    finishing = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    finishing.start()
    engine = make_engine(f"sqlite:///{path}", busy_timeout=5)
    try:
        with engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        finishing.join()
        other.close()
        engine.dispose()


def test_a_first_writer_waiting_for_the_lock_goes_before_the_next_transactions(tmp_path):
    """The web process's acknowledgements (writes_first) and the worker's transactions on
    one file: while the acknowledgement waits for SQLite's lock, the worker's next
    transaction does not begin; without FirstWriter it took the lock first, and the next."""
    import time

    from accessbot.models import writing_first

    url = f"sqlite:///{tmp_path / 'order.db'}"
    worker = make_engine(url, busy_timeout=5)
    web = make_engine(url, busy_timeout=0, writes_first=True)
    with worker.begin() as connection:
        connection.execute(text("CREATE TABLE written (who TEXT)"))

    def write(engine, who: str) -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO written VALUES (:who)"), {"who": who})

    def acknowledge() -> None:  # as handlers/handoff.py does
        with writing_first(web):
            while True:
                try:
                    return write(web, "web")
                except OperationalError:  # locked: look again soon
                    time.sleep(0.002)

    held = worker.connect()
    held.begin()
    held.execute(text("INSERT INTO written VALUES ('worker-1')"))  # holds the write lock
    first = threading.Thread(target=acknowledge)
    first.start()
    time.sleep(0.2)  # the acknowledgement is waiting for the lock
    then = threading.Thread(target=write, args=(worker, "worker-2"))
    then.start()
    time.sleep(0.2)
    held.commit()
    held.close()
    first.join(5)
    then.join(5)

    with worker.connect() as connection:
        order = connection.execute(text("SELECT who FROM written ORDER BY rowid")).scalars()
        assert list(order) == ["worker-1", "web", "worker-2"]
    worker.dispose()
    web.dispose()
