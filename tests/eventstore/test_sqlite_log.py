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


def _open_small(url: str) -> object:
    return open_log(url, backend_options={"tail_limit": 50, "merge_min": 120})


def test_dedup_holds_across_tail_delta_and_main(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = open_log(url, backend_options={"tail_limit": 50, "merge_min": 120})
    try:
        for b in range(20):
            log.append_sync(batch(f"b{b}", 30))
        log.close()
        db = sqlite3.connect(tmp_path / "log.db")
        main = db.execute("SELECT count(*) FROM dedup_main").fetchone()[0]
        upto = db.execute("SELECT value FROM log_meta WHERE name='indexed_upto'").fetchone()[0]
        indexed = db.execute(
            "SELECT count(*) FROM (SELECT position FROM dedup_main UNION "
            "SELECT position FROM dedup_delta) WHERE position <= ?",
            (upto,),
        ).fetchone()[0]
        db.close()
        assert main > 0  # merged at least once
        assert upto > 0
        assert indexed == upto  # every indexed position is in a run
        log = open_log(url, backend_options={"tail_limit": 50, "merge_min": 120})
        for b in range(20):
            results = log.append_sync(batch(f"b{b}", 30))
            assert {r.status for r in results} == {"duplicate"}
        assert log.head() == 600
    finally:
        log.close()


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


def test_key_filter_spares_the_sql_lookup_for_new_keys_and_still_finds_duplicates(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    options = {"tail_limit": 100, "merge_min": 300, "key_filter": True}
    log = open_log(url, backend_options=options)
    for b in range(10):
        log.append_sync(batch(f"b{b}", 100))
    log.close()

    log = open_log(url, backend_options=options)
    try:
        backend = log.backend
        log.append_sync(batch("warm", 1))  # the first group starts the filter's build
        backend._builder.join(30)  # type: ignore[attr-defined]
        before = backend.run_lookups  # type: ignore[attr-defined]
        fresh = log.append_sync(batch("fresh", 50))
        assert {r.status for r in fresh} == {"stored"}
        # Filter false positives are possible but rare: at most one probe here.
        assert backend.run_lookups - before <= 1  # type: ignore[attr-defined]
        again = log.append_sync(batch("b3", 100))
        assert {r.status for r in again} == {"duplicate"}
        assert backend._filter.covered_upto >= 900  # type: ignore[attr-defined]
    finally:
        log.close()


def test_a_log_without_the_key_filter_gives_the_same_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = open_log(url, backend_options={"tail_limit": 60, "merge_min": 100, "key_filter": False})
    try:
        for b in range(6):
            log.append_sync(batch(f"b{b}", 50))
        again = log.append_sync([*batch("b1", 50), *batch("new", 5)])
        assert [r.status for r in again] == ["duplicate"] * 50 + ["stored"] * 5
        assert log.backend._filter is None  # type: ignore[attr-defined]
    finally:
        log.close()


def test_tail_is_flushed_in_slices_between_appends(tmp_path: Path) -> None:
    log = open_log(
        f"sqlite:///{tmp_path / 'log.db'}", backend_options={"tail_limit": 40, "flush_slice": 7}
    )
    try:
        for b in range(12):
            log.append_sync(batch(f"s{b}", 10))
        backend = log.backend
        while backend.maintenance_due():
            backend.maintain()
        db = sqlite3.connect(tmp_path / "log.db")
        upto = db.execute("SELECT value FROM log_meta WHERE name='indexed_upto'").fetchone()[0]
        indexed = db.execute(
            "SELECT count(*) FROM (SELECT position FROM dedup_main UNION "
            "SELECT position FROM dedup_delta) WHERE position <= ?",
            (upto,),
        ).fetchone()[0]
        db.close()
        assert upto >= 40
        assert indexed == upto  # every flushed key reached the runs
        again = log.append_sync([*batch("s3", 10), *batch("s11", 10)])
        assert {r.status for r in again} == {"duplicate"}
    finally:
        log.close()
