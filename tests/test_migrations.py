"""Migrations: one head; upgrade on an empty database equals the models; downgrade works."""

import subprocess
import threading

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from models import Base, make_engine
from models.migrate import alembic_config, downgrade, upgrade
from services.errors import ConfigError
from tests.conftest import create_database, drop_database
from tests.fakes.harness import run_bot_command


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


def _migrate_together(url: str, processes: int) -> list[subprocess.CompletedProcess]:
    barrier = threading.Barrier(processes)
    results: list = [None] * processes

    def migrate(index: int) -> None:
        barrier.wait()
        results[index] = run_bot_command({"DATABASE_URL": url}, "migrate")

    threads = [threading.Thread(target=migrate, args=(i,)) for i in range(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.parametrize("processes", [2, 3])
def test_replicas_started_together_on_an_empty_postgres_all_come_up(postgres_server,
                                                                    processes):
    url = create_database(postgres_server)
    try:
        results = _migrate_together(url, processes)
        assert [r.returncode for r in results] == [0] * processes, [r.stderr for r in results]
        command.check(alembic_config(url))
    finally:
        drop_database(postgres_server, url)


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(empty_url):
    upgrade(empty_url)
    engine = make_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    result = run_bot_command({"DATABASE_URL": empty_url}, "migrate")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if "configuration error" in x]
    assert "revision 9999, newer than this accessbot" in line
    with pytest.raises(ConfigError):
        upgrade(empty_url)
    engine = make_engine(empty_url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "9999"
    engine.dispose()


def test_a_database_that_does_not_answer_is_one_line():
    result = run_bot_command({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
                             "migrate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if "configuration error" in x]
    assert line.startswith("accessbot: configuration error: DATABASE_URL: cannot reach")
    assert "127.0.0.1:1/none" in line
