"""`playerlog projections status|rebuild|retry|skip|cancel`, run in-process with
`main([...])`, and `playerlog worker` as real processes: SIGTERM stops it cleanly,
and when the driving worker is killed with SIGKILL the standby takes over."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from api.cli_projections import ProgressLine, describe_progress
from eventstore import Envelope, EventLog, open_log
from projections import Progress, ProjectionStatus, load_builds, open_views
from projections.database import ViewsLocation
from projections.worker import runner_holder
from tests.eventstore.conftest import pg_base_url, pg_schema, pg_url
from tests.projections.helpers import dump, fresh_build, mixed_events

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["pg_base_url", "pg_schema", "pg_url"]


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite log; with `BOTH_DATABASES`, also a PostgreSQL one."""
    if getattr(request, "param", "sqlite") == "postgres":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def views(db: str, tmp_path: Path) -> ViewsLocation:
    """Where the commands find the read models without --views: beside a SQLite log,
    in a PostgreSQL log's own schema."""
    return db if db.startswith("postgresql://") else tmp_path / "cli.views.db"


BOTH_DATABASES = pytest.mark.parametrize("db", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def log(db: str) -> Iterator[EventLog]:
    opened = open_log(db)
    yield opened
    opened.close()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    # An app made by an earlier test in this process routes the `playerlog` loggers to
    # stdout as JSON lines; the command itself configures no logging.
    out = "".join(line for line in out.splitlines(True) if not line.startswith('{"ts"'))
    return code, out, err


def _builds(views: Path) -> list[tuple[int, bool, str, int]]:
    conn = open_views(views)
    try:
        return [(b.build, b.active, b.state, b.position) for b in load_builds(conn, ["players"])]
    finally:
        conn.close()


def _broken_identify() -> Envelope:
    when = datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
    return Envelope(
        tenant="casino-a", environment="live", source="identify", type="identify",
        event_id="identify-broken", subject="ply_1", occurred_at=when, received_at=when,
        client_id=None, payload=b'{"user_id": "ply_1", "traits": ["not", "an", "object"]}',
    )


def _state(name: str, done: int, total: int, rate: float | None) -> ProjectionStatus:
    return ProjectionStatus(
        name=name, version=1, build=2, active=False, state="rebuilding", stopped=False,
        position=done, head=total, lag_events=total - done, lag_seconds=1.0,
        progress=Progress(done=done, total=total, rate=rate, eta_seconds=None),
        error=None, skipped=[],
    )


# -- status ------------------------------------------------------------------------------


@BOTH_DATABASES
def test_status_shows_a_table_and_that_nothing_drives_the_projections(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog
) -> None:
    log.append_sync(mixed_events(50, seed=1))
    _run(capsys, "projections", "rebuild", "players", "--db", db)

    code, out, _ = _run(capsys, "projections", "status", "--db", db)

    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["NAME", "BUILD", "VERSION", "ACTIVE", "STATE"]
    table = {line.split()[0]: line.split() for line in rows if line.strip()}
    assert {"players", "games", "ledger"} <= set(table)
    assert table["players"][3:8] == ["yes", "live", str(log.head()), str(log.head()), "0"]
    rest = rows
    assert rest[-1].startswith("driven by: no process")


def test_status_json_is_the_http_report_with_tracebacks(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog
) -> None:
    log.append_sync([_broken_identify()])
    _run(capsys, "projections", "rebuild", "players", "--db", db)

    code, out, _ = _run(capsys, "projections", "status", "--db", db, "--json")

    assert code == 0
    report = json.loads(out)
    assert report["runner"] is None
    (players,) = [p for p in report["projections"] if p["name"] == "players"]
    assert players["stopped"] is True
    assert players["error"]["position"] == 1
    assert players["error"]["event_id"] == "identify-broken"
    assert "Traceback" in players["error"]["detail"]


def test_the_views_file_comes_from_the_option_or_playerlog_views(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log.append_sync(mixed_events(20, seed=2))
    elsewhere = tmp_path / "elsewhere" / "read.db"
    code, _, _ = _run(capsys, "projections", "rebuild", "players", "--db", db,
                      "--views", str(elsewhere))
    assert code == 0
    assert elsewhere.exists()
    assert not (tmp_path / "cli.views.db").exists()

    monkeypatch.setenv("PLAYERLOG_VIEWS", str(elsewhere))
    _, out, _ = _run(capsys, "projections", "status", "--db", db)
    assert out.splitlines()[1].split()[5] == str(log.head())


# -- rebuild -------------------------------------------------------------------------------


@BOTH_DATABASES
def test_rebuild_drives_the_new_build_to_the_head_and_swaps_it_in(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(2500, seed=3))
    _run(capsys, "projections", "rebuild", "players", "--db", db)
    assert _builds(views) == [(1, True, "live", log.head())]

    code, out, err = _run(capsys, "projections", "rebuild", "players", "--db", db)

    assert code == 0
    assert out.splitlines() == [
        "players: started, build 2 (version "
        f"{out.split('(version ')[1].split(')')[0]})",
        f"players: build 2 is active at position {log.head()}",
    ]
    last = err.splitlines()[-1]
    assert last.startswith(f"players: {log.head():,} / {log.head():,} events (100.0%)")
    assert _builds(views) == [(2, True, "live", log.head())]
    assert runner_holder(views) is None
    conn = open_views(views)
    try:
        assert dump(conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        conn.close()


@BOTH_DATABASES
def test_rebuild_no_wait_leaves_it_to_serve_or_worker_and_a_later_rebuild_follows_it(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog, views: Path
) -> None:
    log.append_sync(mixed_events(300, seed=4))
    _run(capsys, "projections", "rebuild", "players", "--db", db)

    code, out, _ = _run(capsys, "projections", "rebuild", "--all", "--no-wait", "--db", db)

    assert code == 0
    assert "players: started, build 2" in out
    assert "no process drives the projections now" in out
    assert _builds(views) == [(1, True, "live", log.head()), (2, False, "building", 0)]
    _, status_out, _ = _run(capsys, "projections", "status", "--db", db)
    assert "rebuilding" in status_out

    code, out, _ = _run(capsys, "projections", "rebuild", "players", "--db", db)

    assert code == 0
    assert "players: following the rebuild under way, build 2" in out
    assert _builds(views) == [(2, True, "live", log.head())]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a projection NAME or --all (not both)"),
        (("players", "--all"), "give a projection NAME or --all (not both)"),
        (("nope",), "no projection 'nope'; the projections are "),
    ],
)
def test_rebuild_refuses_unclear_requests(
    capsys: pytest.CaptureFixture[str], db: str, views: Path, args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(capsys, "projections", "rebuild", "--db", db, *args)
    assert code == 2
    assert out == ""
    assert message in err


def test_a_rebuild_that_stops_on_an_event_says_how_to_retry_or_skip_it(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog
) -> None:
    log.append_sync(mixed_events(30, seed=5))
    log.append_sync([_broken_identify()])
    position = log.head()

    code, out, _ = _run(capsys, "projections", "rebuild", "players", "--db", db)

    assert code == 1
    assert f"stopped at position {position} (event identify-broken, identify)" in out
    assert "playerlog projections retry players" in out
    assert f"playerlog projections skip players --position {position}" in out


# -- retry, skip, cancel ------------------------------------------------------------------


@BOTH_DATABASES
def test_skip_takes_exactly_the_stopped_position_and_records_who(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog, views: Path
) -> None:
    log.append_sync([_broken_identify()])
    log.append_sync(mixed_events(30, seed=6))
    _run(capsys, "projections", "rebuild", "players", "--db", db)

    code, _, err = _run(capsys, "projections", "skip", "players", "--position", "2",
                        "--by", "ops@casino-a", "--db", db)
    assert code == 1
    assert "not stopped at position 2" in err

    code, out, _ = _run(capsys, "projections", "skip", "players", "--position", "1",
                        "--by", "ops@casino-a", "--db", db)
    assert code == 0
    assert out == (
        "players build 1: skipped position 1 (event identify-broken, identify) by ops@casino-a\n"
    )

    _, status_out, _ = _run(capsys, "projections", "status", "--db", db)
    skipped = "players build 1 skipped position 1 (event identify-broken) by ops@casino-a"
    assert skipped in status_out
    assert "stopped at" not in status_out
    assert _builds(views) == [(1, True, "building", 1)]

    # A skip belongs to its build: a rebuild from zero meets the event again.
    code, out, _ = _run(capsys, "projections", "rebuild", "players", "--db", db)
    assert code == 1
    assert "build 2 stopped at position 1" in out


def test_skip_without_by_records_the_login_name(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "night-operator")
    monkeypatch.setenv("USER", "night-operator")
    log.append_sync([_broken_identify()])
    _run(capsys, "projections", "rebuild", "players", "--db", db)

    code, out, _ = _run(capsys, "projections", "skip", "players", "--position", "1", "--db", db)

    assert code == 0
    assert out.endswith("by night-operator\n")


@BOTH_DATABASES
def test_retry_clears_the_error_and_the_runner_tries_the_event_again(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog
) -> None:
    code, _, err = _run(capsys, "projections", "retry", "players", "--db", db)
    assert code == 1
    assert "is not stopped" in err

    log.append_sync([_broken_identify()])
    _run(capsys, "projections", "rebuild", "players", "--db", db)
    code, out, _ = _run(capsys, "projections", "retry", "players", "--db", db)
    assert code == 0
    assert out == "players build 1: error cleared; the runner applies position 1 again\n"
    _, status_out, _ = _run(capsys, "projections", "status", "--db", db, "--json")
    (players,) = json.loads(status_out)["projections"][:1]
    assert players["error"] is None


@BOTH_DATABASES
def test_cancel_abandons_the_rebuild_under_way(
    capsys: pytest.CaptureFixture[str], db: str, log: EventLog, views: Path
) -> None:
    log.append_sync(mixed_events(20, seed=7))
    _run(capsys, "projections", "rebuild", "players", "--db", db)
    code, _, err = _run(capsys, "projections", "cancel", "players", "--db", db)
    assert code == 1
    assert "no rebuild of 'players' is under way" in err

    _run(capsys, "projections", "rebuild", "players", "--no-wait", "--db", db)
    code, out, _ = _run(capsys, "projections", "cancel", "players", "--db", db)

    assert code == 0
    assert out == "players build 2: rebuild cancelled\n"
    assert _builds(views) == [(1, True, "live", log.head())]


# -- the progress line ----------------------------------------------------------------------


def test_progress_reads_done_of_total_rate_and_time_left() -> None:
    text = describe_progress([_state("players", 250_000, 1_000_000, 50_000.0)])
    assert text == "players: 250,000 / 1,000,000 events (25.0%), 50,000 events/s, 0:00:15 left"
    both = describe_progress(
        [_state("players", 100, 1000, 10.0), _state("games", 900, 1000, 20.0)]
    )
    assert both == "games, players: 1,000 / 2,000 events (50.0%), 30 events/s, 0:00:33 left"
    assert describe_progress([_state("players", 0, 10, None)]).endswith("rate not measured yet")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_redrawn_in_place_on_a_terminal() -> None:
    terminal = _Terminal()
    line = ProgressLine(terminal)
    line.show([_state("players", 1, 4, 1.0)])
    line.show([_state("players", 2, 4, 1.0)])
    line.close()
    assert terminal.getvalue().count("\r") == 2
    assert terminal.getvalue().endswith("\n")
    assert terminal.getvalue().count("\n") == 1


def test_the_progress_line_is_a_plain_line_every_few_seconds_elsewhere() -> None:
    sink = io.StringIO()
    now = [0.0]
    line = ProgressLine(sink, every=5.0, clock=lambda: now[0])
    for second in range(12):
        now[0] = float(second)
        line.show([_state("players", second, 12, 1.0)])
    line.close()
    lines = sink.getvalue().splitlines()
    assert [ln.split(":")[1].split("/")[0].strip() for ln in lines] == ["0", "5", "10", "11"]
    assert "\r" not in sink.getvalue()


# -- playerlog worker as a process -------------------------------------------------------------


def _worker(db: str, output: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PLAYERLOG_RUNNER_LOCK_POLL": "0.1", "PLAYERLOG_DB": db}
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=env,
            stdout=sink, stderr=subprocess.STDOUT,
        )


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def _holder_pid(views: Path) -> int | None:
    holder = runner_holder(views)
    return None if holder is None else holder.pid


def _checkpoint(views: Path) -> int:
    return max((position for _, active, _, position in _builds(views) if active), default=0)


def test_worker_drives_until_sigterm_then_exits_cleanly_and_lets_go(
    db: str, log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(500, seed=8))
    child = _worker(db, tmp_path / "worker.out")
    try:
        _wait_for(lambda: _holder_pid(views) == child.pid, "the worker takes the lock")
        _wait_for(lambda: _checkpoint(views) == log.head(), "the worker catches up")
        log.append_sync(mixed_events(200, seed=9, prefix="late"))
        _wait_for(lambda: _checkpoint(views) == log.head(), "the worker follows the log")
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)
    output = (tmp_path / "worker.out").read_text()
    assert child.returncode == 0, output
    assert runner_holder(views) is None
    assert "stopped driving them" in output


def test_when_the_driving_worker_is_killed_the_standby_takes_over_without_double_applying(
    db: str, log: EventLog, views: Path, tmp_path: Path
) -> None:
    events = mixed_events(30_000, seed=10)
    log.append_sync(events[:2000])
    first = _worker(db, tmp_path / "first.out")
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: _holder_pid(views) == first.pid, "the first worker drives")
        _wait_for(lambda: _checkpoint(views) == log.head(), "the first worker catches up")
        second = _worker(db, tmp_path / "second.out")
        _wait_for(lambda: b"standing by" in (tmp_path / "second.out").read_bytes(),
                  "the second worker stands by")
        # the worker writes behind while it catches up (its checkpoint moves at
        # flushes, not every page): a first batch it has flushed, then the rest,
        # and the kill lands while it works on those
        log.append_sync(events[2000:16_000])
        _wait_for(lambda: _checkpoint(views) > 2000, "the first worker is at work")
        log.append_sync(events[16_000:])

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = _checkpoint(views)
        took = _wait_for(lambda: _holder_pid(views) == second.pid, "the standby takes over",
                         timeout=10)
        _wait_for(lambda: _checkpoint(views) == log.head(), "the standby catches up")
    finally:
        for child in (first, second):
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                child.wait(timeout=20)
    assert first.returncode == -signal.SIGKILL
    assert second is not None
    assert second.returncode == 0
    assert took < 5
    assert killed_at < log.head(), "killed before the end: the standby had work left"
    conn = open_views(views)
    try:
        assert dump(conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        conn.close()
