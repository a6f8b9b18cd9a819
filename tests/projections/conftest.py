"""Fixtures of the projections' tests: a real log on a temporary SQLite file, and read
models in a SQLite file or (`any_views`, `pg_views`) in a fresh PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import EventLog, open_log
from tests.eventstore.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["pg_base_url", "pg_schema", "pg_url"]


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'playerlog.db'}"


@pytest.fixture
def log(log_url: str) -> Iterator[EventLog]:
    opened = open_log(log_url)
    yield opened
    opened.close()


@pytest.fixture
def views(tmp_path: Path) -> Path:
    return tmp_path / "playerlog.views.db"


@pytest.fixture
def pg_views(pg_url: str) -> str:
    """Read models in PostgreSQL, in the test's own fresh schema."""
    return pg_url


@pytest.fixture(params=["sqlite", "postgres"])
def any_views(request: pytest.FixtureRequest, views: Path) -> str | Path:
    """The same test with the read models in SQLite (a file) and in PostgreSQL."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_views")  # type: ignore[no-any-return]
    return views
