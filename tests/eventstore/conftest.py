"""Fixtures of the log's tests: a fresh PostgreSQL schema per test.

The server is `PLAYERLOG_TEST_PG`, else `postgresql://postgres@127.0.0.1:5432/test`.
When it cannot be reached, the PostgreSQL tests are skipped with the reason, and
fail instead under `CI=true` (CI must never pass by skipping them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The test server's URL (no `schema`), checked to be reachable."""
    url = os.environ.get("PLAYERLOG_TEST_PG") or DEFAULT_TEST_PG
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        where = url.split("@")[-1]  # never print a password
        reason = f"PostgreSQL at {where} is unreachable ({' '.join(str(error).split())})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(f"{reason}; start it or set PLAYERLOG_TEST_PG (under CI=true this fails)")
    return url


@pytest.fixture
def pg_schema(pg_base_url: str) -> Iterator[str]:
    """A schema name no other test uses; dropped (CASCADE) after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(pg_base_url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_base_url: str, pg_schema: str) -> str:
    """A log URL whose tables live in the test's own, fresh schema."""
    separator = "&" if "?" in pg_base_url else "?"
    return f"{pg_base_url}{separator}schema={pg_schema}"
