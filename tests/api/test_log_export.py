"""`playerlog log export`: the log as JSON lines, filtered, streamed a page at a time,
with payloads embedded exactly as they were received."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from api.cli_log import add_log_commands, run_log_command
from api.log_export import export_line, export_log
from eventstore import Envelope, EventLog, open_log

WHEN = datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
LINE_KEYS = [
    "position", "tenant", "environment", "source", "type", "event_id", "subject",
    "occurred_at", "received_at", "client_id", "payload",
]


def envelope(
    event_id: str,
    *,
    tenant: str = "casino-a",
    environment: str = "live",
    type_: str = "bet_placed",
    payload: bytes | None = None,
) -> Envelope:
    return Envelope(
        tenant=tenant, environment=environment, source="track", type=type_,
        event_id=event_id, subject="ply_1", occurred_at=WHEN, received_at=WHEN,
        client_id="tests",
        payload=payload if payload is not None else (
            b'{"user_id": "ply_1", "event_name": "' + type_.encode() + b'", "event_id": "'
            + event_id.encode() + b'", "timestamp": "2026-05-18T14:38:00Z"}'
        ),
    )


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    opened = open_log(f"sqlite:///{tmp_path / 'export.db'}")
    yield opened
    opened.close()


class Pages:
    """An output that records each write (one per page)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.writes.append(data)
        return len(data)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in b"".join(self.writes).splitlines()]


def test_each_line_holds_the_position_the_envelope_fields_and_the_payload(
    log: EventLog,
) -> None:
    log.append_sync([envelope("e1")])
    out = Pages()

    summary = export_log(log, out)

    (line,) = out.lines()
    assert list(line) == LINE_KEYS
    assert line == {
        "position": 1, "tenant": "casino-a", "environment": "live", "source": "track",
        "type": "bet_placed", "event_id": "e1", "subject": "ply_1",
        "occurred_at": "2026-05-18T14:38:00Z", "received_at": "2026-05-18T14:38:00Z",
        "client_id": "tests",
        "payload": {"user_id": "ply_1", "event_name": "bet_placed", "event_id": "e1",
                    "timestamp": "2026-05-18T14:38:00Z"},
    }
    assert (summary.events, summary.last_position, summary.head) == (1, 1, 1)


def test_payload_is_embedded_byte_for_byte_so_exact_decimals_keep_their_digits(
    log: EventLog,
) -> None:
    payload = b'{"amount": 12.50, "tiny": 0.1000000000000000000001, "n": 1e2}'
    log.append_sync([envelope("e1", payload=payload)])
    out = Pages()

    export_log(log, out)

    assert b'"payload":' + payload + b"}\n" in out.writes[0]
    decoded = msgspec.json.Decoder(float_hook=Decimal).decode(out.writes[0])
    assert str(decoded["payload"]["amount"]) == "12.50"
    assert decoded["payload"]["tiny"] == Decimal("0.1000000000000000000001")


def test_a_pretty_printed_payload_stays_on_one_line_with_the_same_value(
    log: EventLog,
) -> None:
    payload = b'{\r\n  "amount": 2.50,\n  "note": "two\\nlines"\n}'
    log.append_sync([envelope("e1", payload=payload)])
    out = Pages()

    export_log(log, out)

    (line,) = b"".join(out.writes).splitlines()
    assert json.loads(line)["payload"] == {"amount": 2.5, "note": "two\nlines"}
    assert b'"amount": 2.50' in line


def test_a_payload_that_is_not_json_is_kept_as_base64(log: EventLog) -> None:
    log.append_sync([envelope("e1", payload=b"\xffnot json")])

    line = json.loads(export_line(log.read()[0]))

    assert line["payload"] is None
    assert base64.b64decode(line["payload_base64"]) == b"\xffnot json"


def test_filters_select_by_position_tenant_environment_and_types(log: EventLog) -> None:
    log.append_sync([
        envelope("e1"),
        envelope("e2", tenant="casino-b"),
        envelope("e3", environment="staging"),
        envelope("e4", type_="login_success"),
        envelope("e5", type_="deposit_success"),
        envelope("e6"),
    ])

    def ids(**filters: Any) -> list[str]:
        out = Pages()
        export_log(log, out, **filters)
        return [line["event_id"] for line in out.lines()]

    assert ids() == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert ids(after=4) == ["e5", "e6"]
    assert ids(tenant="casino-b") == ["e2"]
    assert ids(tenant="casino-a", environment="live") == ["e1", "e4", "e5", "e6"]
    assert ids(types=["login_success", "deposit_success"]) == ["e4", "e5"]
    assert ids(tenant="casino-a", types=["bet_placed"], after=1) == ["e3", "e6"]


def test_limit_stops_early_and_the_last_position_continues_the_next_export(
    log: EventLog,
) -> None:
    log.append_sync([envelope(f"e{n}") for n in range(1, 8)])
    first, second = Pages(), Pages()

    head = export_log(log, first, limit=3, page_size=2)
    rest = export_log(log, second, after=head.last_position or 0)

    assert [line["event_id"] for line in first.lines()] == ["e1", "e2", "e3"]
    assert [line["event_id"] for line in second.lines()] == ["e4", "e5", "e6", "e7"]
    assert (head.events, head.last_position, rest.events, rest.last_position) == (3, 3, 4, 7)


def test_it_writes_one_page_at_a_time(log: EventLog) -> None:
    log.append_sync([envelope(f"e{n}") for n in range(2_500)])
    out = Pages()

    export_log(log, out, page_size=1_000)

    assert [chunk.count(b"\n") for chunk in out.writes] == [1_000, 1_000, 500]


def test_events_appended_while_it_runs_are_left_for_the_next_export(log: EventLog) -> None:
    log.append_sync([envelope("e1"), envelope("e2")])

    class AppendingOutput(Pages):
        def write(self, data: bytes, /) -> int:
            log.append_sync([envelope(f"late{len(self.writes)}")])
            return super().write(data)

    out = AppendingOutput()
    summary = export_log(log, out, page_size=1)

    assert [line["event_id"] for line in out.lines()] == ["e1", "e2"]
    assert (summary.head, log.head()) == (2, 4)


def test_an_empty_log_exports_nothing(log: EventLog) -> None:
    out = Pages()

    summary = export_log(log, out)

    assert (out.writes, summary.events, summary.last_position) == ([], 0, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"after": -1}, "after must be 0 or more"),
        ({"limit": -1}, "limit must be 0 or more"),
        ({"page_size": 0}, "page_size must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_naming_them(
    log: EventLog, options: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        export_log(log, Pages(), **options)


# -- the command ---------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(prog="playerlog")
    add_log_commands(built.add_subparsers(dest="command", required=True))
    return built


def run(argv: list[str]) -> int:
    try:
        return run_log_command(parser().parse_args(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


def seeded_db(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with closing(open_log(db)) as log:
        log.append_sync([
            envelope("e1"),
            envelope("e2", tenant="casino-b"),
            envelope("e3", type_="login_success"),
        ])
    return db


def test_the_command_writes_json_lines_to_stdout_and_a_summary_to_stderr(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    db = seeded_db(tmp_path)

    code = run(["log", "export", "--db", db, "--tenant", "casino-b"])

    out, err = capsysbinary.readouterr()
    assert code == 0
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == ["e2"]
    assert err.decode() == "exported 1 events; last position 2, log head 3 at the start\n"


def test_the_command_writes_to_a_file_with_repeated_type_filters(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    db = seeded_db(tmp_path)
    target = tmp_path / "events.jsonl"

    code = run([
        "log", "export", "--db", db, "--env", "live", "--after", "1",
        "--type", "bet_placed", "--type", "login_success", "-o", str(target),
    ])

    out, _ = capsysbinary.readouterr()
    assert (code, out) == (0, b"")
    lines = [json.loads(line) for line in target.read_bytes().splitlines()]
    assert [line["event_id"] for line in lines] == ["e2", "e3"]


def test_the_command_refuses_a_negative_position(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code = run(["log", "export", "--db", seeded_db(tmp_path), "--after", "-5"])

    _, err = capsysbinary.readouterr()
    assert code == 2
    assert b"--after: must be 0 or more, got -5" in err


def test_the_command_says_when_it_cannot_write_its_output(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    target = tmp_path / "missing-dir" / "events.jsonl"

    code = run(["log", "export", "--db", seeded_db(tmp_path), "-o", str(target)])

    _, err = capsysbinary.readouterr()
    assert code == 2
    assert f"cannot write {target}".encode() in err


def _parsers(
    node: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, node
    for action in node._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


@pytest.mark.parametrize("path", [("log",), ("log", "export"), ("log", "import")])
def test_every_option_of_the_log_commands_is_in_its_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    node = dict(_parsers(parser()))[path]
    code = run([*path, "--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert node.description
    assert " ".join(node.description.split()) in text
    for action in node._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help
                assert choice.help in text
            continue
        assert action.help, action.dest
        for name in action.option_strings or [action.metavar or action.dest]:
            assert str(name) in text
        assert " ".join(action.help.split()) in text, action.dest
