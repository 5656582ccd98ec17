"""The listeners' app with a recording hand-off, for the handler tests; and the web
process's engine on a migrated SQLite file, for the real hand-off's."""

import pytest

from accessbot.models import make_engine
from accessbot.models.migrate import upgrade
from tests.handlers.slack_requests import Handoffs, make_app


@pytest.fixture
def handoffs():
    return Handoffs()


@pytest.fixture
def app(catalog, handoffs):
    return make_app(catalog, handoffs)


@pytest.fixture
def web_engine(tmp_path):
    """A migrated SQLite file, and an engine as the web process makes it."""
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    upgrade(url)
    engine = make_engine(url, busy_timeout=0, writes_first=True)
    yield engine
    engine.dispose()
