"""The SQLite log's dedup runs: flushes, tiered merges, interruptions, migration."""

from __future__ import annotations

import multiprocessing
import sqlite3
from array import array
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from eventstore import Envelope, EventLog, dedup_runs, open_log
from eventstore.backend import LogBackend
from eventstore.dedup_runs import Run, pick_merge, size_class
from eventstore.envelope import key_hash
from eventstore.sqlite_schema import SQLITE_MIGRATIONS, apply_sqlite_migrations
from eventstore.url import open_backend
from tests.eventstore.helpers import batch
from tests.eventstore.writers import append_batches

SMALL = "tail_limit=50&merge_fan_in=3&merge_slice=40"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


def _url(db: Path, knobs: str = SMALL) -> str:
    return f"sqlite:///{db}?{knobs}"


def _upkeep(log: EventLog) -> None:
    backend = log.backend
    while backend.maintenance_due():
        backend.maintain()


def _runs(db: Path) -> list[tuple[int, str, int]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT id, state, rows FROM dedup_runs ORDER BY id").fetchall()


def _indexed(db: Path) -> tuple[int, list[int]]:
    """indexed_upto, and every position found in a live run (with repeats)."""
    with closing(sqlite3.connect(db)) as conn:
        upto = conn.execute("SELECT value FROM log_meta WHERE name = 'indexed_upto'").fetchone()
        live = conn.execute("SELECT id FROM dedup_runs WHERE state = 'live'").fetchall()
        positions = []
        for (run,) in live:
            for (packed,) in conn.execute(f"SELECT positions FROM dedup_run_{run}"):
                block = array("q")
                block.frombytes(packed)
                positions.extend(block)
    return int(upto[0]), positions


def _run(id_: int, rows: int) -> Run:
    return Run(id_, "live", rows, 0, ())


def test_runs_are_merged_only_with_runs_of_a_similar_size() -> None:
    assert [size_class(rows, 100, 4) for rows in (1, 399, 400, 1599, 1600)] == [0, 0, 1, 1, 2]
    runs = [_run(1, 1600), _run(2, 100), _run(3, 500), _run(4, 100), _run(5, 100)]
    assert [run.id for run in pick_merge(runs, 100, 3)] == [2, 4, 5]
    assert pick_merge(runs[:4], 100, 3) == []


def test_runs_of_the_final_size_class_are_never_merged_again() -> None:
    runs = [_run(1, 1600), _run(2, 1700), _run(3, 1800), _run(4, 100), _run(5, 100)]
    assert [run.id for run in pick_merge(runs, 100, 3)] == [1, 2, 3]
    assert [run.id for run in pick_merge(runs, 100, 3, levels=2)] == []
    runs.append(_run(6, 100))
    assert [run.id for run in pick_merge(runs, 100, 3, levels=2)] == [4, 5, 6]


def test_a_big_log_stops_growing_its_runs_and_still_finds_every_key(db: Path) -> None:
    # tail 50, fan-in 2, 2 levels: runs stop at 200 keys (class 2), and final
    # runs add up instead of being merged into ever bigger ones.
    log = open_log(_url(db, "tail_limit=50&merge_fan_in=2&merge_levels=2&merge_slice=1000"))
    try:
        for b in range(45):
            log.append_sync(batch(f"g{b}", 40))
            _upkeep(log)
        live = [rows for _, state, rows in _runs(db) if state == "live"]
        assert max(live) < 400
        assert sum(rows >= 200 for rows in live) >= 4
        again = [envelope for b in range(45) for envelope in batch(f"g{b}", 40)]
        assert {r.status for r in log.append_sync(again)} == {"duplicate"}
    finally:
        log.close()
    upto, positions = _indexed(db)
    assert sorted(positions) == list(range(1, upto + 1))


def test_a_lookup_over_more_runs_than_one_statement_takes_finds_them_all(
    tmp_path: Path,
) -> None:
    conn = _schema(tmp_path / "runs.db")
    with closing(conn):
        cursor = conn.cursor()
        runs = [
            dedup_runs.write_new_run(cursor, array("q", [h * 10, h * 10 + 1]), array("q", [h, h]))
            for h in range(7)
        ]
        wanted = [h * 10 + 1 for h in range(7)] + [5]
        found = dedup_runs.lookup(cursor, runs, wanted, runs_per_statement=3)
        assert sorted(found) == [(h * 10 + 1, h) for h in range(7)]


def _schema(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    apply_sqlite_migrations(conn)
    return conn


def test_a_sliced_merge_keeps_every_entry_even_for_hashes_shared_by_many_keys(
    tmp_path: Path,
) -> None:
    # Hash 7 for 600 positions spans more than two blocks' worth of entries.
    entries = [(7, p) for p in range(1, 601)] + [
        (h * 1_000_003, 1000 + h) for h in range(-900, 900)
    ]
    conn = _schema(tmp_path / "runs.db")
    with closing(conn):
        cursor = conn.cursor()
        thirds = [entries[i::3] for i in range(3)]
        runs = [
            dedup_runs.write_new_run(
                cursor,
                *dedup_runs.sort_entries(
                    array("q", [h for h, _ in part]), array("q", [p for _, p in part])
                ),
            )
            for part in thirds
        ]
        merging = dedup_runs.start_merge(cursor, runs)
        finished, slices = False, 0
        while not finished:
            merging, finished = dedup_runs.merge_slice(cursor, merging, 100)
            slices += 1
        assert slices > 5
        live = [run for run in dedup_runs.load_runs(cursor) if run.state == "live"]
        assert [run.id for run in live] == [merging.id]
        assert live[0].rows == len(entries)
        found: dict[int, list[int]] = {}
        for digest, position in dedup_runs.lookup(cursor, live, [7, 0, -900 * 1_000_003, 5]):
            found.setdefault(digest, []).append(position)
        assert sorted(found.pop(7)) == list(range(1, 601))
        assert found == {0: [1000], -900 * 1_000_003: [100]}  # and nothing for hash 5


def test_flushes_and_merges_index_every_position_exactly_once(db: Path) -> None:
    log = open_log(_url(db))
    try:
        for b in range(30):
            log.append_sync(batch(f"b{b}", 25))
        _upkeep(log)
    finally:
        log.close()
    upto, positions = _indexed(db)
    runs = _runs(db)
    assert upto >= 700
    assert sorted(positions) == list(range(1, upto + 1))
    assert {state for _, state, _ in runs} == {"live"}
    assert len(runs) < 750 // 50  # merged: fewer runs than flushes
    assert max(rows for _, _, rows in runs) >= 50 * 3  # at least one merge of three


def test_every_key_is_found_again_in_the_tail_the_runs_and_after_reopening(db: Path) -> None:
    log = open_log(_url(db))
    try:
        for b in range(30):
            log.append_sync(batch(f"b{b}", 25))
        for b in (0, 7, 29):  # in a merged run, a young run, the tail
            assert {r.status for r in log.append_sync(batch(f"b{b}", 25))} == {"duplicate"}
    finally:
        log.close()
    log = open_log(_url(db))
    try:
        for b in range(30):
            results = log.append_sync(batch(f"b{b}", 25))
            assert {r.status for r in results} == {"duplicate"}
        assert log.head() == 750
    finally:
        log.close()


def _backend(db: Path, knobs: str) -> LogBackend:
    """The backend alone: no writer thread doing upkeep behind the test's back."""
    return open_backend(_url(db, knobs))


def _statuses(backend: LogBackend, envelopes: list[Envelope]) -> set[str]:
    results, _ = backend.write(envelopes)
    return {r.status for r in results}


def test_an_interrupted_merge_is_carried_on_by_the_next_writer(db: Path) -> None:
    knobs = "tail_limit=50&merge_fan_in=3&merge_slice=10"
    backend = _backend(db, knobs)
    try:
        for b in range(6):
            backend.write(batch(f"m{b}", 25))
            while backend.maintenance_due() and "merge" not in {s for _, s, _ in _runs(db)}:
                backend.maintain()
        backend.maintain()  # one more slice of ten: the merged run is part written
    finally:
        backend.close()  # as a crash between two slices leaves it
    assert "merge" in {state for _, state, _ in _runs(db)}
    backend = _backend(db, knobs)
    try:
        for b in range(6):
            assert _statuses(backend, batch(f"m{b}", 25)) == {"duplicate"}
        while backend.maintenance_due():
            backend.maintain()
        for b in range(6):
            assert _statuses(backend, batch(f"m{b}", 25)) == {"duplicate"}
    finally:
        backend.close()
    upto, positions = _indexed(db)
    assert {state for _, state, _ in _runs(db)} == {"live"}
    assert sorted(positions) == list(range(1, upto + 1))


def test_a_flush_another_writer_overtook_is_dropped_and_nothing_is_indexed_twice(
    db: Path,
) -> None:
    knobs = "tail_limit=50&merge_fan_in=8"
    first, second = _backend(db, knobs), _backend(db, knobs)
    try:
        first.write(batch("o", 60))
        first.maintain()  # the first step of a flush of (0, 60], in memory
        assert second.write(batch("p", 5))[0][0].status == "stored"
        while second.maintenance_due():
            second.maintain()  # the other writer flushes (0, 65] meanwhile
        while first.maintenance_due():
            first.maintain()
        assert _statuses(first, [*batch("o", 60), *batch("p", 5)]) == {"duplicate"}
    finally:
        first.close()
        second.close()
    upto, positions = _indexed(db)
    assert upto == 65
    assert sorted(positions) == list(range(1, 66))


def _schema_2_file(db: Path) -> None:
    """A file as schema 2 left it: 90 events, 1-60 in main, 61-80 in the delta."""
    events = batch("old", 90)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
        )
        for version, statements in SQLITE_MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (version,))
        for position, e in enumerate(events, start=1):
            digest = key_hash(e.tenant, e.environment, e.event_id)
            conn.execute(
                "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    position,
                    digest,
                    e.tenant,
                    e.environment,
                    e.source,
                    e.type,
                    e.event_id,
                    e.subject,
                    "2026-05-18T15:10:00.000000Z",
                    "2026-05-18T15:10:00.000000Z",
                    e.client_id,
                    e.payload,
                ),
            )
            table = "dedup_main" if position <= 60 else "dedup_delta" if position <= 80 else None
            if table:
                conn.execute(f"INSERT INTO {table} VALUES (?, ?)", (digest, position))
        conn.execute("UPDATE log_meta SET value = 80 WHERE name = 'indexed_upto'")
        conn.execute("UPDATE log_meta SET value = 60 WHERE name = 'main_rows'")
        conn.execute("UPDATE log_meta SET value = 20 WHERE name = 'delta_rows'")
        conn.commit()


def test_a_schema_2_file_keeps_its_dedup_index_as_runs(db: Path) -> None:
    _schema_2_file(db)
    log = open_log(_url(db, "tail_limit=50&merge_fan_in=8"))
    try:
        assert [(id_, state) for id_, state, _ in _runs(db)] == [(1, "live"), (2, "live")]
        results = log.append_sync([*batch("old", 90), *batch("new", 3)])
        assert [r.status for r in results] == ["duplicate"] * 90 + ["stored"] * 3
        assert [r.position for r in results[:90]] == list(range(1, 91))
    finally:
        log.close()


def _runs_then_appends(url: str) -> int:
    return append_batches(url, "child", 8, 25)


def test_a_writer_in_another_process_sees_the_keys_this_one_indexed(db: Path) -> None:
    url = _url(db)
    log = open_log(url)
    try:
        for b in range(8):
            log.append_sync(batch(f"child-{b}", 25))  # the child's keys, first
        _upkeep(log)
        assert any(rows for _, _, rows in _runs(db))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            assert pool.submit(_runs_then_appends, url).result() == 0
        # and this writer sees the child's flushes and merges (none stored anything)
        more = log.append_sync(batch("child-3", 25))
        assert {r.status for r in more} == {"duplicate"}
    finally:
        log.close()


def _append_fresh(url: str, prefix: str) -> int:
    return append_batches(url, prefix, 12, 25)


def test_keys_indexed_by_another_process_are_duplicates_here(db: Path) -> None:
    url = _url(db, "tail_limit=50&merge_fan_in=3&merge_slice=1000")
    log = open_log(url)
    try:
        log.append_sync(batch("mine", 10))  # this process's filter and tail are warm
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            assert pool.submit(_append_fresh, url, "other").result() == 300
        assert _indexed(db)[0] >= 150  # the other process flushed most of its keys
        for b in range(12):
            again = log.append_sync(batch(f"other-{b}", 25))
            assert {r.status for r in again} == {"duplicate"}
        assert log.head() == 310
    finally:
        log.close()
