"""Fixtures of the projections' tests: a real log on a temporary SQLite file, and read
models in a SQLite file or (`helpers.BOTH_DATABASES`, `pg_views`) in a fresh PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import EventLog, open_log
from projections.database import ViewsLocation
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
def views(request: pytest.FixtureRequest, tmp_path: Path) -> ViewsLocation:
    """A SQLite file; a test marked `helpers.BOTH_DATABASES` also runs
    with the read models in PostgreSQL."""
    if getattr(request, "param", "sqlite") == "postgres":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_views")  # type: ignore[no-any-return]
    return tmp_path / "playerlog.views.db"


@pytest.fixture
def pg_views(pg_url: str) -> str:
    """Read models in PostgreSQL, in the test's own fresh schema."""
    return pg_url

