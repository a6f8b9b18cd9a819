"""Fixtures of the delivery tests: a real log (SQLite, or PostgreSQL where asked),
the shared NATS server, and destinations with fast retry timings.

NATS is `PLAYERLOG_TEST_NATS`, else `nats://127.0.0.1:4222`. When it cannot be
reached, the NATS tests are skipped with the reason, and fail instead under
`CI=true` (CI must never pass by skipping them), as the PostgreSQL tests do.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from eventstore import EventLog, open_log
from tests.eventstore.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["pg_base_url", "pg_schema", "pg_url"]

DEFAULT_TEST_NATS = "nats://127.0.0.1:4222"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    opened = open_log(f"sqlite:///{tmp_path / 'playerlog.db'}")
    yield opened
    opened.close()


@pytest.fixture
def pg_log(pg_url: str) -> Iterator[EventLog]:
    opened = open_log(pg_url)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_log(request: pytest.FixtureRequest) -> EventLog:
    """The same test on both backends (named records behave alike on each)."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_log")  # type: ignore[no-any-return]
    return request.getfixturevalue("log")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The shared NATS (JetStream) server's URL, checked to be reachable."""
    url = os.environ.get("PLAYERLOG_TEST_NATS") or DEFAULT_TEST_NATS
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 4222), timeout=3):
            pass
    except OSError as error:
        reason = f"NATS at {parts.hostname}:{parts.port} is unreachable ({error})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(f"{reason}; start it or set PLAYERLOG_TEST_NATS (under CI=true this fails)")
    return url
