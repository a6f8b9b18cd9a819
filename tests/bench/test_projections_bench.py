"""bench/projections stays working: its generator, its peer and one tiny run end to end.

Timings are never asserted here (they belong in the benchmark's tables); what is checked
is that the pieces do what the benchmark's figures rely on.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import projections as bench
from bench.projections_events import EventGenerator, cached_log
from bench.projections_peer import copy_events, run_peer
from bench.projections_reads import latency_of, percentile, probe, wait_caught_up
from eventstore import open_log
from projections import PlayersProjection, ProjectionRunner

PLAY = ("unified:gameround", "track:bet_placed", "track:bet_won", "track:bet_lost",
        "track:slot_spin_completed")  # fmt: skip


def _first_envelopes(seed: int, count: int) -> list[tuple[str, str, str, bytes]]:
    requests = EventGenerator(seed, players=500).requests()
    found: list[tuple[str, str, str, bytes]] = []
    while len(found) < count:
        found.extend((e.source, e.type, e.event_id, e.payload) for e in next(requests))
    return found[:count]


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    assert _first_envelopes(7, 2_000) == _first_envelopes(7, 2_000)
    assert _first_envelopes(7, 2_000) != _first_envelopes(8, 2_000)


def test_a_generated_log_is_mostly_play_with_every_kind_of_player_event(tmp_path: Path) -> None:
    path, mix = cached_log(tmp_path, 30_000, seed=3, report=lambda _: None)
    assert mix.total == 30_000
    assert mix.share(lambda key: key in PLAY) > 0.6
    for kind in ("identify:identify", "unified:player", "unified:game", "unified:deposit",
                 "unified:withdraw", "unified:login", "track:login_success",
                 "track:deposit_success", "track:withdrawal_completed"):  # fmt: skip
        assert mix.counts.get(kind, 0) > 0, kind
    log = open_log(f"sqlite:///{path}")
    try:
        assert log.head() == 30_000
        events = log.read(after=0, limit=30_000)
    finally:
        log.close()
    identify = [e for e in events if e.source == "identify"]
    assert any(b'"anonymous_id"' in e.payload for e in identify)
    anonymous = {e.subject for e in events if e.subject.startswith("anon_")}
    assert anonymous, "pre-login activity under anonymous ids"
    # Bets and wins of a unified round share its round_id.
    wins = [e for e in events if e.type == "gameround" and b'"is_win":true' in e.payload]
    assert wins
    round_of_win = json.loads(wins[0].payload)["data"]["round_id"]
    assert any(
        e.type == "gameround" and json.loads(e.payload)["data"]["round_id"] == round_of_win
        and b'"is_win":false' in e.payload
        for e in events
    )  # fmt: skip


def test_a_cached_log_is_reused_and_an_unfinished_one_is_made_again(tmp_path: Path) -> None:
    messages: list[str] = []
    path, _ = cached_log(tmp_path, 2_000, seed=5, report=messages.append)
    assert len(messages) == 1
    cached_log(tmp_path, 2_000, seed=5, report=messages.append)
    assert len(messages) == 1, "reused, not generated again"
    path.with_name(path.stem + ".mix.json").unlink()  # as if generation was interrupted
    cached_log(tmp_path, 2_000, seed=5, report=messages.append)
    assert len(messages) == 2


def _players_rows(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT tenant, environment, user_id, traits, anonymous_ids, event_count, "
            "first_seen, last_seen, login_count, last_login FROM players ORDER BY user_id"
        ).fetchall()
    finally:
        conn.close()


def test_the_peer_folds_the_same_events_into_the_same_players_rows(tmp_path: Path) -> None:
    log_path, _ = cached_log(tmp_path / "cache", 1_500, seed=11, report=lambda _: None)
    log = open_log(f"sqlite:///{log_path}")
    try:
        source = tmp_path / "stored.db"
        assert copy_events(log, source, 1_500) == 1_500
        ours = tmp_path / "ours.db"
        with ProjectionRunner(log, [PlayersProjection()], views=ours) as runner:
            runner.catch_up()
    finally:
        log.close()
    peer_views = tmp_path / "peer.db"
    run = run_peer(source, peer_views, [PlayersProjection()], 1_500, timeout=120)
    assert run.events == 1_500
    assert run.seconds > 0
    rows = _players_rows(peer_views)
    assert rows
    assert rows == _players_rows(ours)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    summary = latency_of(list(reversed(values)))
    assert (summary.samples, summary.p50_ms, summary.max_ms) == (100, 50.0, 100.0)


class _NoRoute(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status_code":404,"detail":"Not Found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def server_without_the_route() -> Iterator[str]:
    with _serve(_NoRoute) as url:
        yield url


def test_a_server_without_the_read_route_is_reported_not_measured(
    server_without_the_route: str,
) -> None:
    problem = probe(server_without_the_route, "token")
    assert problem is not None
    assert "404" in problem


class _CatchingUp(BaseHTTPRequestHandler):
    """GET /v1/projections: behind for the first `behind_for` answers, then live."""

    answers = 0
    behind_for = 2

    def do_GET(self) -> None:
        type(self).answers += 1
        lag = 5 if type(self).answers <= type(self).behind_for else 0
        state = "rebuilding" if lag else "live"
        body = json.dumps(
            {"projections": [{"name": "players", "state": state, "lag_events": lag}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_latency_is_measured_only_once_the_servers_projections_are_live() -> None:
    _CatchingUp.answers, _CatchingUp.behind_for = 0, 2
    with _serve(_CatchingUp) as url:
        assert wait_caught_up(url, "token", limit=30) is None
    assert _CatchingUp.answers == 3


def test_a_server_whose_projections_stay_behind_is_not_measured() -> None:
    _CatchingUp.answers, _CatchingUp.behind_for = 0, 10**6
    with _serve(_CatchingUp) as url:
        problem = wait_caught_up(url, "token", limit=1.5)
        assert problem is not None
        assert "players rebuilding lag 5" in problem


def test_a_tiny_run_prints_every_row_and_writes_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    code = bench.main([
        "--sizes", "2000,3000", "--runs", "2", "--peer-events", "300", "--players", "500",
        "--no-http", "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path),
        "--json", str(out_json), "--markdown", str(out_md),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    for label in ("log read, no work (ceiling)", "all projections together",
                  "eventsourcing ProjectionRunner (peer)", "get_player(conn, ...)",
                  "not measured (--no-http)", ">= 100k ev/s", "within 20%"):  # fmt: skip
        assert label in printed, label
    data = json.loads(out_json.read_text())
    cells = {(c["size"], c["what"]): c for c in data["cells"]}
    assert len(cells[(3000, "all")]["seconds"]) == 2
    assert cells[(3000, "peer")]["events"] == 300
    assert all(c["median_rate"] > 0 for c in cells.values())
    (function_row, http_row) = data["latencies"]
    assert len(function_row["runs"]) == 2
    assert function_row["result"]["p99_ms"] >= function_row["result"]["p50_ms"]
    assert http_row["result"] is None
    assert "| log |" in out_md.read_text()
