"""Run Alembic programmatically: `python bot.py migrate`, serving, and the tests.

Every upgrade or downgrade, from here or from the `alembic` command line, runs on a
connection from `migration_connection` (see migrations/env.py): it holds the migration
lock, so replicas started together migrate one after the other, and it refuses a
database whose schema is newer than this code before anything runs.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, pool, text

from accessbot.models.session import make_engine

ROOT = Path(__file__).resolve().parent.parent

# The Postgres advisory lock that serialises migrations: the 64-bit integer whose bytes
# are the ASCII of "accessbt" (0x6163636573736274). Documented in the README, so that
# nothing else using advisory locks in the same database picks it.
MIGRATION_LOCK_KEY = 7017561931753153140


class SchemaTooNew(Exception):
    """The database is at a revision this code does not know: a newer accessbot migrated it."""


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


@contextmanager
def migration_connection(url: str) -> Iterator[Connection]:
    """A connection holding the migration lock, on a schema this code knows, for Alembic."""
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Session-level, not transaction-level: it outlives the transactions Alembic
                # commits (an autocommit_block too). If this process dies, its connection
                # closes and Postgres releases the lock; so does the error path below.
                connection.execute(text("SELECT pg_advisory_lock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
                refuse_newer_schema(connection)
                connection.commit()  # Alembic gets an idle connection and runs as it always has
                yield connection
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
                connection.commit()
            else:
                # SQLite: one transaction for the whole upgrade (SQLite's DDL is
                # transactional). Its BEGIN IMMEDIATE (models.session) takes the database's
                # write lock, which other processes wait for; Alembic's own transactions
                # would release it between two migrations.
                with connection.begin():
                    refuse_newer_schema(connection)
                    yield connection
    finally:
        engine.dispose()


def refuse_newer_schema(connection: Connection) -> None:
    """Raise SchemaTooNew if the database is at a revision unknown to this code's scripts."""
    script = ScriptDirectory(str(ROOT / "migrations"))
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = sorted(_current_revisions(connection) - known)
    if unknown:
        raise SchemaTooNew(
            f"the database schema is at revision {', '.join(unknown)}, newer than this "
            f"accessbot (head {', '.join(script.get_heads())}); run the newer version or "
            "restore a backup")


def _current_revisions(connection: Connection) -> set[str]:
    """What alembic_version holds (read directly: Alembic's MigrationContext would log
    two lines first, and a refusal is meant to be one line)."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def schema_revisions(url: str) -> tuple[set[str], set[str], set[str]]:
    """(the revisions the database is at, this code's heads, every revision it knows),
    changing nothing; raises sqlalchemy's OperationalError when the database does not answer."""
    engine = make_engine(url, connect_timeout=5)
    try:
        with engine.connect() as connection:
            current = _current_revisions(connection)
    finally:
        engine.dispose()
    script = ScriptDirectory(str(ROOT / "migrations"))
    return current, set(script.get_heads()), {r.revision for r in script.walk_revisions()}
