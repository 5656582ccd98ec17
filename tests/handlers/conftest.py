"""The listeners' app with a recording hand-off, for the handler tests."""

import pytest

from tests.handlers.slack_requests import Handoffs, make_app


@pytest.fixture
def handoffs():
    return Handoffs()


@pytest.fixture
def app(catalog, handoffs):
    return make_app(catalog, handoffs)
