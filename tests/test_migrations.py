"""Migrations: one head; upgrade on an empty database equals the models; downgrade works."""

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from models import Base, make_engine
from models.migrate import alembic_config, downgrade, upgrade
from tests.conftest import create_database, drop_database


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
