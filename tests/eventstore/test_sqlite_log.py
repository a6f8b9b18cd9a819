"""The SQLite backend against the log's contract, plus its own dedup index."""

from __future__ import annotations

import multiprocessing
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from eventstore import open_log
from eventstore.sqlite_schema import SQLITE_MIGRATIONS, schema_version
from tests.eventstore.contract import LogContract
from tests.eventstore.helpers import batch, envelope


class TestSQLiteLog(LogContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'log.db'}"


def test_hash_collisions_are_told_apart_by_the_stored_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventstore.sqlite_log as sqlite_log  # noqa: PLC0415

    monkeypatch.setattr(sqlite_log, "key_hash", lambda *_: 42)  # every key collides
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}", backend_options={"tail_limit": 3})
    try:
        first = log.append_sync(batch("c", 5))
        assert [r.status for r in first] == ["stored"] * 5
        again = log.append_sync([*batch("c", 5), envelope("new", b"{}")])
        assert [r.status for r in again] == ["duplicate"] * 5 + ["stored"]
        assert [r.position for r in again] == [1, 2, 3, 4, 5, 6]
    finally:
        log.close()


def test_default_database_is_playerlog_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAYERLOG_DB", raising=False)
    log = open_log()
    log.close()
    assert (tmp_path / "playerlog.db").exists()


def test_playerlog_db_environment_variable_selects_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAYERLOG_DB", f"sqlite:///{tmp_path / 'env.db'}")
    log = open_log()
    log.close()
    assert (tmp_path / "env.db").exists()


def test_file_is_in_wal_mode_with_full_sync_by_default(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        backend = log.backend
        conn = backend._conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        log.close()


def _migrate(path: str) -> int:
    log = open_log(f"sqlite:///{path}")
    log.close()
    return 1


def test_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=context) as pool:
        assert sum(pool.map(_migrate, [path] * 4)) == 4
    db = sqlite3.connect(path)
    try:
        assert schema_version(db) == len(SQLITE_MIGRATIONS)
        applied = db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert applied == len(SQLITE_MIGRATIONS)
    finally:
        db.close()


def test_a_log_without_the_key_filter_gives_the_same_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}?key_filter=off&tail_limit=60&merge_fan_in=2"
    log = open_log(url)
    try:
        for b in range(6):
            log.append_sync(batch(f"b{b}", 50))
        again = log.append_sync([*batch("b1", 50), *batch("new", 5)])
        assert [r.status for r in again] == ["duplicate"] * 50 + ["stored"] * 5
        assert log.backend._filter is None  # type: ignore[attr-defined]
    finally:
        log.close()
