"""Shared fixtures: databases (SQLite always, Postgres when it answers), clock, catalog."""

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from accessbot.models import AccessRequest, Base, make_engine, make_session_factory
from accessbot.models.migrate import upgrade
from accessbot.services.catalog import parse_catalog
from accessbot.settings import database_url


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A test that runs bot.main in-process configures logging: a handler on that test's
    captured stderr, closed once the test ends. Later tests' threads (an inbox writer,
    say) would log into it ("--- Logging error ---")."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


REQUIRE_POSTGRES = os.environ.get("ACCESSBOT_REQUIRE_POSTGRES") == "1"


def _postgres_server_url() -> tuple[str | None, str]:
    """(URL of a database we may use, or None; why) for this run."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        return database_url({"DATABASE_URL": given}), "TEST_DATABASE_URL"
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return None, "TEST_DATABASE_URL is not set and nothing answers on 127.0.0.1:5432"
    return "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", "127.0.0.1:5432"


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a Postgres database to create test databases from; skip (or fail) if none."""
    server_url, why = _postgres_server_url()
    if server_url is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"Postgres is required (ACCESSBOT_REQUIRE_POSTGRES=1) but {why}")
        pytest.skip(f"Postgres tests skipped: {why}")
    return server_url


def create_database(server_url: str) -> str:
    """A new, empty database on the server; returns its URL."""
    name = f"accessbot_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" '
                                    "WITH (FORCE)"))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """A fresh database for this test run, dropped at the end."""
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


def pytest_report_header(config):
    server_url, why = _postgres_server_url()
    if server_url is None:
        return f"postgres: NOT AVAILABLE ({why}); Postgres tests will be skipped"
    return f"postgres: using {make_url(server_url).render_as_string()} ({why})"


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'accessbot.db'}"


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres",
                                                                marks=pytest.mark.postgres)])
def migrated_url(request):
    url = request.getfixturevalue(f"{request.param}_url")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(migrated_url):
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    """A session factory on a migrated database, emptied after each test."""
    yield make_session_factory(engine)
    empty_tables(engine)


def empty_tables(engine) -> None:
    with engine.begin() as connection:
        # access_requests and grants refer to each other: cut the extension links first
        connection.execute(update(AccessRequest).values(extends_grant_id=None))
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


CATALOG = {
    "approval_channel": "C0APPROVALS",
    "admin_channel": "C0SECURITY",
    "resources": {
        "prod-admins": {
            "description": "Administrator access to production",
            "kind": "iam_group", "group": "prod-admins",
            "approvers": ["U0BOB", "U0DAVE"],
            "default_duration": "1h", "max_duration": "4h", "min_duration": "5m",
            "expiry_warning": "15m",
        },
        "prod-readonly": {
            "kind": "iam_role", "role": "ProdReadOnly", "approvers": ["U0BOB"],
            "max_duration": "8h",
        },
    },
}


@pytest.fixture
def catalog():
    return parse_catalog(CATALOG)


@pytest.fixture(scope="session")
def moto_server():
    """moto in its own process, over HTTP (AWS_ENDPOINT_URL), started once when asked for."""
    from tests.fakes.harness import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


_CALLED_IN_WORKERS: set[str] = set()  # pytest-xdist: each worker's AWS calls, once it ends


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _CALLED_IN_WORKERS.update(getattr(node, "workeroutput", {}).get("aws_calls", ()))


def pytest_sessionfinish(session, exitstatus):
    """The least-privilege check (tests/least_privilege.py), after a full run; an xdist
    worker hands its calls to the controller, which checks them all."""
    from tests.least_privilege import called_actions, differences, full_run

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["aws_calls"] = sorted(called_actions())
        return
    if not full_run(session):
        return
    problems = differences(called_actions() | _CALLED_IN_WORKERS)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line("least privilege: the policies and the code differ:", red=True)
            for problem in problems:
                reporter.write_line(f"  {problem}", red=True)
    elif reporter:
        reporter.write_line("least privilege: every AWS operation called is allowed by the "
                            "policies, and every one allowed is called")
