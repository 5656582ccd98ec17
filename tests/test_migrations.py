"""Migrations: one head; upgrade on an empty database equals the models; downgrade works;
replicas migrate together; a schema newer than the code is refused."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from accessbot.models import Base, make_engine
from accessbot.models.migrate import (
    MIGRATION_LOCK_KEY,
    SchemaTooNew,
    alembic_config,
    downgrade,
    upgrade,
)
from tests.conftest import create_database, drop_database
from tests.fakes.harness import ROOT, free_port, run_bot_command


def test_one_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = create_database(server)
    yield url
    drop_database(server, url)


def test_upgrade_matches_models_and_downgrade_empties(empty_url):
    upgrade(empty_url)
    command.check(alembic_config(empty_url))  # raises if the models and the schema differ
    engine = make_engine(empty_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())

    downgrade(empty_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


# -- replicas, and a rolled-back deploy ---------------------------------------------------

def at_revisions(url: str) -> set[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        found = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return found


def head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def start_together(n: int, env: dict[str, str], *args: str) -> list:
    """n `python bot.py ARGS` processes, started at the same moment; their results."""
    barrier = threading.Barrier(n)

    def run(_):
        barrier.wait()
        return run_bot_command(env, *args, timeout=120)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_started_together_on_an_empty_database_all_migrate(empty_url, replicas):
    results = start_together(replicas, {"DATABASE_URL": empty_url}, "migrate")
    assert [r.returncode for r in results] == [0] * replicas, [r.stderr for r in results]
    assert sum("Running upgrade  -> 0001" in r.stderr for r in results) == 1  # one did it
    assert at_revisions(empty_url) == {head()}
    command.check(alembic_config(empty_url))


@pytest.mark.postgres
def test_an_upgrade_waits_for_the_migration_lock(postgres_server):
    url = create_database(postgres_server)
    holder = make_engine(url)
    try:
        with holder.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            migrating = threading.Thread(target=upgrade, args=(url,))
            migrating.start()
            migrating.join(1.0)
            assert migrating.is_alive()  # waiting for the lock, having done nothing
            assert inspect(holder).get_table_names() == []
            connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                               {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            migrating.join(30)
        assert not migrating.is_alive()
        assert at_revisions(url) == {head()}
    finally:
        holder.dispose()
        drop_database(postgres_server, url)


FUTURE = "9999_from_a_newer_accessbot"


def stamp_future(url: str) -> None:
    """What a newer accessbot leaves behind: a revision these scripts do not know."""
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    engine.dispose()


def refusal() -> str:
    return (f"the database schema is at revision {FUTURE}, newer than this accessbot "
            f"(head {head()}); run the newer version or restore a backup")


def test_a_newer_schema_is_refused_and_left_alone(empty_url):
    stamp_future(empty_url)
    for migrate in (upgrade, downgrade):
        with pytest.raises(SchemaTooNew) as refused:
            migrate(empty_url)
        assert str(refused.value) == refusal()
    assert at_revisions(empty_url) == {FUTURE}


SERVE_ENV = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret",
             "SLACK_APP_TOKEN": "", "SLACK_API_URL": "http://127.0.0.1:9/",
             "ACCESSBOT_CONFIG": str(ROOT / "accessbot.example.yaml"),
             "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.mark.parametrize("args", [("migrate",), ("run-job", "sweep")],
                         ids=["migrate", "run-job"])
def test_bot_refuses_a_newer_schema_in_one_line(tmp_path, args, moto_server):
    """(run-job checks the AWS credentials first: moto accepts them.)"""
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    stamp_future(url)
    result = run_bot_command({**SERVE_ENV, **moto_server.env(), "PORT": str(free_port()),
                              "DATABASE_URL": url}, *args, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == f"accessbot: configuration error: {refusal()}"
    assert at_revisions(url) == {FUTURE}


def test_serve_checks_slack_before_it_touches_the_database(tmp_path):
    """(It then migrates through the same migrate() as the two commands above.)"""
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    stamp_future(url)
    result = run_bot_command({**SERVE_ENV, "PORT": str(free_port()), "DATABASE_URL": url},
                             timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "accessbot: configuration error: Slack did not answer at http://127.0.0.1:9/")
    assert at_revisions(url) == {FUTURE}


@pytest.mark.postgres
def test_bot_migrate_refuses_a_newer_postgres_schema_in_one_line(postgres_server):
    url = create_database(postgres_server)
    try:
        stamp_future(url)
        result = run_bot_command({"DATABASE_URL": url}, "migrate")
        assert result.returncode == 2
        assert result.stderr.strip() == f"accessbot: configuration error: {refusal()}"
        assert at_revisions(url) == {FUTURE}
    finally:
        drop_database(postgres_server, url)
