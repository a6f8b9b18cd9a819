"""Fixtures of the projections' tests: a real log on a temporary SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import EventLog, open_log


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
