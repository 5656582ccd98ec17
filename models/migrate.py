"""Run Alembic programmatically: `python bot.py migrate`, serving, and the tests.

Replicas that start together migrate one after the other: on Postgres the upgrade holds
an advisory lock (MIGRATION_LOCK) on its own connection, and the later ones find the
schema at head and do nothing. A database whose schema is newer than this code (a
rolled-back deploy) is refused before anything runs.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from models.session import make_engine
from services.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_LOCK = 0x61636365737362  # "accessb": the pg_advisory_lock key of migrations


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    config = alembic_config(url)
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:  # held by this session until unlocked or disconnected
                connection.execute(text("SELECT pg_advisory_lock(:key)"),
                                   {"key": MIGRATION_LOCK})
                connection.commit()
            try:
                refuse_newer_schema(connection, config)
                connection.commit()
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
            finally:
                if postgres:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": MIGRATION_LOCK})
                    connection.commit()
    except OperationalError as exc:
        raise ConfigError(f"DATABASE_URL: cannot reach the database at "
                          f"{_where(engine)}: {str(exc.orig).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()


def refuse_newer_schema(connection: Connection, config: Config) -> None:
    """A revision this code does not know means the schema is newer: never touch it."""
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = [revision for revision in current if revision not in known]
    if unknown:
        head = ScriptDirectory.from_config(config).get_current_head()
        raise ConfigError(
            f"the database schema is at revision {', '.join(unknown)}, newer than this "
            f"accessbot (its latest is {head}); run the newer version, or restore the "
            "backup taken before the upgrade")


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def _where(engine) -> str:
    url = engine.url
    return f"{url.host}:{url.port or 5432}/{url.database}" if url.host else str(url.database)
