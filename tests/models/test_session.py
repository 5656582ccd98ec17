"""A Postgres restart under a running bot: the pool's connections die, the next transaction
works (pool_pre_ping), and while the server is away a transaction fails cleanly."""

import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from accessbot.models import make_engine, make_session_factory, transaction
from accessbot.models.session import CONNECT_TIMEOUT_SECONDS
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy(postgres_server):
    parts = make_url(postgres_server)
    with TcpProxy((parts.host, parts.port or 5432)) as proxy:
        yield proxy


@pytest.fixture
def sessions(proxy, postgres_server):
    engine = make_engine(proxy.url(postgres_server))
    yield make_session_factory(engine)
    engine.dispose()


def backend_pid(sessions) -> int:
    """One transaction; the server process that ran it."""
    with transaction(sessions) as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def fill_pool(sessions, n: int) -> set[int]:
    """n connections open at once, then back in the pool; their server processes."""
    engine = sessions.kw["bind"]
    connections = [engine.connect() for _ in range(n)]
    pids = {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in connections}
    for connection in connections:
        connection.close()
    return pids


def test_after_every_connection_is_cut_the_next_transactions_work(proxy, sessions):
    before = fill_pool(sessions, 3)
    assert proxy.drop_all() == 6  # 3 connections, both ends: the pool holds only dead ones
    after = {backend_pid(sessions) for _ in range(4)}
    assert after.isdisjoint(before)  # new connections, made without restarting anything


def test_while_the_server_refuses_a_transaction_fails_cleanly_then_work_goes_on(proxy,
                                                                                sessions):
    backend_pid(sessions)
    proxy.drop_all()
    with proxy.refusing():
        with pytest.raises(OperationalError):
            backend_pid(sessions)
        with pytest.raises(OperationalError):  # every attempt, not only the first
            backend_pid(sessions)
    assert backend_pid(sessions) > 0


def test_a_transaction_cut_mid_way_fails_and_the_next_one_works(proxy, sessions):
    with pytest.raises(OperationalError):
        with transaction(sessions) as session:
            session.execute(text("SELECT 1"))
            proxy.drop_all()
            session.execute(text("SELECT 2"))  # not retried: it may have done something
    assert backend_pid(sessions) > 0


def test_a_server_that_does_not_answer_fails_the_attempt_in_seconds(proxy, postgres_server):
    url = make_url(proxy.url(postgres_server)).update_query_dict({"connect_timeout": "1"})
    engine = make_engine(url.render_as_string(hide_password=False))  # the URL's own wins
    started = time.monotonic()
    with proxy.silent(), pytest.raises(OperationalError):
        engine.connect()
    assert time.monotonic() - started < 5
    engine.dispose()


def test_connections_have_a_connect_timeout_by_default(sessions):
    with sessions() as session:
        parameters = session.connection().connection.dbapi_connection.info.get_parameters()
    assert parameters["connect_timeout"] == str(CONNECT_TIMEOUT_SECONDS)
