"""Fixtures the notifier tests share: a Slack stand-in on 127.0.0.1 and a results history on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.store import ResultsStore
from tests.servers import SlackServer


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A real HTTP server speaking Slack's webhook and Web API, recording every request."""
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultsStore]:
    """A results history in a fresh SQLite file, its tables created."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    results = ResultsStore(engine)
    results.ensure_table()
    yield results
    engine.dispose()
