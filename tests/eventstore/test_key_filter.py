"""The Bloom filter never says "absent" for a key it was given, and a saved copy
is used only when it is this log's and sound."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from eventstore import open_log
from eventstore.key_filter import KeyFilter, filter_path, load_filter, save_filter
from tests.eventstore.helpers import batch

signed_64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(signed_64, max_size=300))
def test_every_added_key_might_be_contained(digests: list[int]) -> None:
    key_filter = KeyFilter(capacity=1000)
    key_filter.add_all(digests[::2])
    for digest in digests[1::2]:
        key_filter.add(digest)
    assert all(key_filter.might_contain(d) for d in digests)


def test_false_positives_stay_rare_at_capacity() -> None:
    key_filter = KeyFilter(capacity=100_000)
    spread = [(i * 0x9E3779B97F4A7C15) % 2**64 - 2**63 for i in range(key_filter.capacity)]
    key_filter.add_all(spread)
    probes = [(i * 0xC2B2AE3D27D4EB4F + 7) % 2**64 - 2**63 for i in range(100_000)]
    rate = sum(key_filter.might_contain(p) for p in probes) / len(probes)
    # 0.019% in theory: a group of 400 new keys rarely has even one false positive.
    assert rate < 0.001
    assert not key_filter.full


# -- the filter saved beside the database ------------------------------------------------


def _fill(url: str, batches: int) -> None:
    log = open_log(url)
    try:
        for b in range(batches):
            log.append_sync(batch(f"k{b}", 100))
    finally:
        log.close()


def test_a_reopened_log_loads_the_saved_filter_instead_of_scanning(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}?tail_limit=100&merge_fan_in=3"
    _fill(url, 10)
    assert filter_path(str(tmp_path / "log.db")).exists()
    log = open_log(url)
    try:
        backend = log.backend
        before = backend.run_lookups  # type: ignore[attr-defined]
        fresh = log.append_sync(batch("fresh", 50))
        assert {r.status for r in fresh} == {"stored"}
        assert backend._builder is None  # type: ignore[attr-defined]  (nothing scanned)
        # Filter false positives are possible but rare: at most one probe here.
        assert backend.run_lookups - before <= 1  # type: ignore[attr-defined]
        again = log.append_sync(batch("k3", 100))
        assert {r.status for r in again} == {"duplicate"}
    finally:
        log.close()


def test_a_filter_saved_by_another_log_is_ignored(tmp_path: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    _fill(f"sqlite:///{first}?tail_limit=100", 3)
    _fill(f"sqlite:///{second}?tail_limit=100", 3)
    shutil.copy(filter_path(str(first)), filter_path(str(second)))
    log = open_log(f"sqlite:///{second}?tail_limit=100")
    try:
        again = log.append_sync(batch("k1", 100))  # k1 of *this* log
        assert {r.status for r in again} == {"duplicate"}
        assert log.backend._builder is not None  # type: ignore[attr-defined]  (rebuilt)
    finally:
        log.close()


def test_a_damaged_or_too_new_filter_copy_is_ignored(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    _fill(f"sqlite:///{path}?tail_limit=100", 3)
    with sqlite3.connect(path) as conn:
        log_id = conn.execute("SELECT value FROM log_meta WHERE name = 'log_id'").fetchone()[0]
    good = filter_path(path).read_bytes()

    def key_at(_position: int) -> int | None:
        return None

    assert load_filter(path, log_id, 10**6, key_at) is None  # another history at that position
    filter_path(path).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert load_filter(path, log_id, 10**6, lambda _p: 0) is None  # checksum
    filter_path(path).write_bytes(good)
    assert load_filter(path, log_id, 100, lambda _p: 0) is None  # covers more than is indexed
    assert load_filter(path, log_id + 1, 10**6, lambda _p: 0) is None  # another log's


def test_saving_and_loading_keeps_every_key(tmp_path: Path) -> None:
    key_filter = KeyFilter(capacity=1000)
    digests = [(i * 0x9E3779B97F4A7C15) % 2**64 - 2**63 for i in range(500)]
    key_filter.add_all(digests)
    key_filter.covered_upto = 500
    save_filter(str(tmp_path / "x.db"), key_filter, log_id=7, anchor=digests[-1])
    loaded = load_filter(str(tmp_path / "x.db"), 7, 500, lambda _p: digests[-1])
    assert loaded is not None
    assert loaded.covered_upto == 500
    assert loaded.count == 500
    assert all(loaded.might_contain(d) for d in digests)
