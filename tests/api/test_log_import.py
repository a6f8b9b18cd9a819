"""`playerlog log import`: export lines and bare API items are validated, deduplicated
and appended as the API would; every rejected line is reported with its field and reason."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from api.app import Services
from api.cli_log import add_log_commands, run_log_command
from api.log_export import export_log
from api.log_import import (
    DEFAULT_CLIENT_ID,
    ImportOptions,
    ImportSummary,
    LogImporter,
    Rejection,
    import_lines,
    read_lines,
)
from api.settings import CatalogueMode
from eventstore import AppendResult, EventLog, NewEvent, open_log
from tests.api.conftest import MakeToken, example

CLOCK = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

TRACK = {
    "user_id": "ply_1", "event_name": "bet_placed", "event_id": "bet-1",
    "timestamp": "2026-05-18T14:38:00Z",
    "properties": {"bet_amount": 2.50, "currency": "EUR", "game_id": "g1"},
}
IDENTIFY = {"user_id": "ply_1", "timestamp": "2026-05-18T14:38:00Z", "traits": {"vip": True}}
DEPOSIT = {
    "event": "deposit",
    "data": {
        "unique_id": "dep-1", "timestamp": "2026-05-18T14:38:00Z", "player_id": "ply_1",
        "amount": 10.5, "currency": "EUR", "method": "card",
    },
}


def line(value: Any) -> bytes:
    return msgspec.json.encode(value)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    opened = open_log(f"sqlite:///{tmp_path / 'import.db'}")
    yield opened
    opened.close()


class Run:
    """One import through the library, collecting its rejections."""

    def __init__(
        self,
        log: Any,
        *,
        mode: CatalogueMode = "warn",
        **options: Any,
    ) -> None:
        self.rejections: list[Rejection] = []
        self.importer = LogImporter(
            log,
            options=ImportOptions(**options),
            catalogue_mode=lambda tenant, environment: mode,
            on_reject=self.rejections.append,
            clock=lambda: CLOCK,
        )

    def __call__(self, lines: Sequence[bytes], **kwargs: Any) -> ImportSummary:
        return import_lines(self.importer, io.BytesIO(b"\n".join(lines) + b"\n"), **kwargs)

    def errors(self) -> dict[int, list[tuple[str, str]]]:
        """Line number -> [(field, code)]."""
        return {r.line: [(e.field, e.code) for e in r.errors] for r in self.rejections}


def exported(log: EventLog) -> bytes:
    out = io.BytesIO()
    export_log(log, out)
    return out.getvalue()


def import_into(log: EventLog, data: bytes, **options: Any) -> tuple[ImportSummary, Run]:
    run = Run(log, **options)
    return run(data.splitlines()), run


# -- round trips ---------------------------------------------------------------------


@pytest.fixture
def api_log(
    client: TestClient[Any], services: Services, make_token: MakeToken
) -> EventLog:
    """A log filled through the HTTP API with the specs' own examples (pretty-printed)."""
    secret = make_token("events:write")
    track = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json",
             "X-Client-Id": "web-1"}
    unified = {"x-api-key": secret, "Content-Type": "application/json"}
    without_id = {k: v for k, v in TRACK.items() if k != "event_id"}
    assert client.post("/v1/events/track", content=example("track_curl.json"),
                       headers=track).status_code == 202
    assert client.post("/v1/events/track", json={"events": [without_id]},
                       headers=track).status_code == 202
    assert client.post("/v1/events/identify", content=example("identify_curl.json"),
                       headers=track).status_code == 202
    assert client.post("/api/v1/events", content=example("unified_curl.json"),
                       headers=unified).status_code in (200, 204)
    return services.log


def test_an_export_imported_into_a_fresh_log_exports_the_same_lines(
    api_log: EventLog, log: EventLog
) -> None:
    original = exported(api_log)

    summary, run = import_into(log, original)

    assert run.rejections == []
    assert (summary.stored, summary.duplicates, summary.rejected) == (api_log.head(), 0, 0)
    assert exported(log) == original
    assert summary.generated_ids == 0, "the server-made id of the track event is kept"


def test_importing_an_export_again_gives_only_duplicates(
    api_log: EventLog, log: EventLog
) -> None:
    original = exported(api_log)
    import_into(log, original)

    again, run = import_into(log, original)

    assert (again.stored, again.duplicates, again.rejected) == (0, api_log.head(), 0)
    assert run.rejections == []
    assert log.head() == api_log.head()


def test_an_export_imported_into_the_log_it_came_from_is_all_duplicates(
    api_log: EventLog,
) -> None:
    summary, _ = import_into(api_log, exported(api_log))

    assert (summary.stored, summary.duplicates, summary.lines) == (0, api_log.head(), 6)


def test_received_at_and_client_id_of_export_lines_are_kept(
    api_log: EventLog, log: EventLog
) -> None:
    import_into(log, exported(api_log))

    original, copied = api_log.read(), log.read()
    assert [(e.received_at, e.client_id) for e in copied] == [
        (e.received_at, e.client_id) for e in original
    ]
    assert {e.client_id for e in copied} == {"web-1", None}


def test_exact_decimals_survive_the_round_trip(log: EventLog, tmp_path: Path) -> None:
    deposit = (
        b'{"event": "deposit", "data": {"unique_id": "d", "timestamp": "2026-05-18T14:38:00Z", '
        b'"player_id": "p", "amount": 0.10, "amount_eur": 12.50, "currency": "EUR", '
        b'"method": "card"}}'
    )
    Run(log, tenant="casino-a", environment="live")([deposit])
    with closing(open_log(f"sqlite:///{tmp_path / 'copy.db'}")) as copy:
        import_into(copy, exported(log))
        (event,) = copy.read()

    assert event.payload == deposit
    data = msgspec.json.Decoder(float_hook=Decimal).decode(event.payload)["data"]
    assert (str(data["amount"]), str(data["amount_eur"])) == ("0.10", "12.50")


# -- bare items ----------------------------------------------------------------------


def test_bare_items_are_told_apart_by_their_fields(log: EventLog) -> None:
    summary = Run(log, tenant="casino-a", environment="live")(
        [line(TRACK), line(IDENTIFY), line(DEPOSIT)]
    )

    events = log.read()
    assert summary.stored == 3
    assert [(e.source, e.type, e.event_id, e.subject) for e in events] == [
        ("track", "bet_placed", "bet-1", "ply_1"),
        ("identify", "identify", events[1].event_id, "ply_1"),
        ("unified", "deposit", "dep-1", "ply_1"),
    ]
    assert events[1].event_id.startswith("identify-")
    assert {(e.tenant, e.environment, e.client_id, e.received_at) for e in events} == {
        ("casino-a", "live", DEFAULT_CLIENT_ID, CLOCK)
    }
    assert events[0].payload == line(TRACK)


def test_source_flag_decides_the_kind_instead_of_the_fields(log: EventLog) -> None:
    run = Run(log, tenant="casino-a", environment="live", source="identify")

    summary = run([line(TRACK)])

    # A track event read as an identify body: its extra fields are accepted and kept.
    assert summary.stored == 1
    assert log.read()[0].source == "identify"


def test_bare_items_without_a_tenant_are_rejected_naming_the_flag(log: EventLog) -> None:
    run = Run(log, environment="live")

    summary = run([line(TRACK)])

    assert summary.rejected == 1
    (error,) = run.rejections[0].errors
    assert (error.field, error.code) == ("tenant", "MISSING_FIELD")
    assert "--tenant" in error.reason


def test_track_events_without_an_event_id_get_new_ids_and_are_counted(log: EventLog) -> None:
    without_id = line({k: v for k, v in TRACK.items() if k != "event_id"})
    run = Run(log, tenant="casino-a", environment="live")

    first = run([without_id])
    second = Run(log, tenant="casino-a", environment="live")([without_id])

    assert (first.generated_ids, second.generated_ids) == (1, 1)
    assert second.stored == 1, "like the API: an event without an id is not deduplicated"


def test_flags_override_the_tenant_and_environment_of_export_lines(
    api_log: EventLog, log: EventLog
) -> None:
    summary, _ = import_into(log, exported(api_log), tenant="casino-z", environment="staging")

    assert summary.stored == api_log.head()
    assert {(e.tenant, e.environment) for e in log.read()} == {("casino-z", "staging")}


# -- rejections ----------------------------------------------------------------------


def test_lines_that_are_not_items_are_rejected_with_the_reason(log: EventLog) -> None:
    run = Run(log, tenant="casino-a", environment="live")

    summary = run([b"not json", b"[1, 2]", b'{"foo": 1}', b"", b"   ", line(TRACK)])

    assert (summary.lines, summary.stored, summary.rejected) == (4, 1, 3)
    assert run.errors() == {
        1: [("line", "json_invalid")],
        2: [("line", "not_an_object")],
        3: [("line", "unknown_kind")],
    }
    assert run.rejections[0].text == "not json"
    assert "got array" in run.rejections[1].errors[0].reason


@pytest.mark.parametrize(
    ("item", "field", "code"),
    [
        ({**TRACK, "user_id": None}, "user_id", "INVALID_TYPE"),
        ({k: v for k, v in TRACK.items() if k != "timestamp"}, "timestamp", "MISSING_FIELD"),
        ({**TRACK, "event_name": "BetPlaced"}, "event_name", "INVALID_VALUE"),
        ({**TRACK, "device_type": "toaster"}, "device_type", "INVALID_VALUE"),
        ({**TRACK, "user_id": "a\u0000b"}, "user_id", "INVALID_VALUE"),
        ({**IDENTIFY, "timestamp": "2026-05-18T14:38:00"}, "timestamp", "timezone_aware"),
        ({**IDENTIFY, "traits": []}, "traits", "dict_type"),
        ({**DEPOSIT, "data": {**DEPOSIT["data"], "amount": -1}}, "data.amount", "greater_than"),
        ({**DEPOSIT, "data": {**DEPOSIT["data"], "amount": "10"}}, "data.amount", "float_type"),
        ({**DEPOSIT, "event": "refund"}, "event", "union_tag_invalid"),
        ({**DEPOSIT, "data": {**DEPOSIT["data"], "unique_id": "x\u0000"}}, "data.unique_id",
         "INVALID_VALUE"),
    ],
)
def test_an_invalid_item_is_rejected_naming_its_field(
    log: EventLog, item: dict[str, Any], field: str, code: str
) -> None:
    run = Run(log, tenant="casino-a", environment="live")

    summary = run([line(item)])

    assert (summary.stored, summary.rejected) == (0, 1)
    assert run.errors() == {1: [(field, code)]}


def test_rejections_read_as_the_api_answers_the_same_item(
    client: TestClient[Any], make_token: MakeToken, log: EventLog
) -> None:
    secret = make_token("events:write")
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    bad_track = {**TRACK, "properties": [1]}
    bad_deposit = {**DEPOSIT, "data": {**DEPOSIT["data"], "amount": 0}}
    run = Run(log, tenant="casino-a", environment="live")

    run([line(bad_track), line(bad_deposit)])

    tracked = client.post("/v1/events/track", json={"events": [bad_track]}, headers=headers)
    unified = client.post("/api/v1/events", json={"items": [bad_deposit]}, headers=headers)
    track_error, deposit_error = (r.errors[0] for r in run.rejections)
    assert track_error.reason == tracked.json()["errors"][0]["message"]
    assert track_error.code == tracked.json()["errors"][0]["code"]
    detail = unified.json()["detail"][0]
    assert (deposit_error.reason, deposit_error.code) == (detail["msg"], detail["type"])
    assert deposit_error.field == ".".join(map(str, detail["loc"][3:]))


def test_a_strict_tenant_rejects_unknown_events_as_the_api_does(log: EventLog) -> None:
    run = Run(log, tenant="casino-a", environment="live", mode="strict")

    run([line({**TRACK, "event_name": "made_up_event"})])

    assert run.errors() == {1: [("event_name", "UNKNOWN_EVENT")]}


def test_a_reused_event_id_with_other_content_is_a_conflict_naming_what_differs(
    log: EventLog,
) -> None:
    run = Run(log, tenant="casino-a", environment="live")

    summary = run([line(TRACK), line({**TRACK, "timestamp": "2026-05-18T14:39:00Z"}),
                   line(TRACK)])

    assert (summary.stored, summary.duplicates, summary.rejected, summary.conflicts) == (
        1, 1, 1, 1
    )
    (rejection,) = run.rejections
    assert rejection.line == 2
    (error,) = rejection.errors
    assert (error.field, error.code) == ("event_id", "EVENT_ID_CONFLICT")
    assert "differs in: timestamp" in error.reason


def test_a_unified_conflict_names_unique_id_inside_the_payload(log: EventLog) -> None:
    run = Run(log, tenant="casino-a", environment="live")
    changed = {**DEPOSIT, "data": {**DEPOSIT["data"], "amount": 11}}

    run([line({"source": "unified", "payload": DEPOSIT}),
         line({"source": "unified", "payload": changed})])

    assert run.errors() == {2: [("payload.data.unique_id", "EVENT_ID_CONFLICT")]}
    assert "data.amount" in run.rejections[0].errors[0].reason


def test_errors_in_a_wrapped_line_name_the_field_inside_its_payload(log: EventLog) -> None:
    run = Run(log, tenant="casino-a", environment="live")
    bad = {**DEPOSIT, "data": {**DEPOSIT["data"], "currency": 5}}

    run([
        line({"source": "unified", "payload": bad}),
        line({"source": "track", "payload": {**TRACK, "user_id": ""}}),
        line({"source": "spreadsheet", "payload": TRACK}),
        line({"payload": TRACK}),
        line({"source": "track", "tenant": 7, "payload": TRACK}),
    ])

    assert run.errors() == {
        1: [("payload.data.currency", "string_type")],
        2: [("payload.user_id", "INVALID_VALUE")],
        3: [("source", "INVALID_VALUE")],
        4: [("source", "MISSING_FIELD")],
        5: [("tenant", "INVALID_TYPE")],
    }


def test_an_environment_other_than_live_or_staging_is_rejected(log: EventLog) -> None:
    run = Run(log)

    run([line({"source": "track", "tenant": "casino-a", "environment": "prod",
               "payload": TRACK})])

    assert run.errors() == {1: [("environment", "INVALID_VALUE")]}
    assert "live, staging" in run.rejections[0].errors[0].reason


def test_an_export_line_whose_event_id_disagrees_with_its_payload_is_rejected(
    log: EventLog,
) -> None:
    run = Run(log, tenant="casino-a", environment="live")

    run([line({"source": "track", "event_id": "other", "payload": TRACK})])

    assert run.errors() == {1: [("event_id", "INVALID_VALUE")]}
    assert "'bet-1'" in run.rejections[0].errors[0].reason


def test_a_line_over_the_limit_is_rejected_without_being_held_whole(log: EventLog) -> None:
    run = Run(log, tenant="casino-a", environment="live")
    huge = line({**TRACK, "properties": {"blob": "x" * 5_000}})

    summary = run([huge, line(TRACK)], max_line_bytes=1_000)

    assert (summary.lines, summary.stored, summary.rejected) == (2, 1, 1)
    assert run.errors() == {1: [("line", "line_too_long")]}
    assert len(run.rejections[0].text) == 1_000


def test_read_lines_numbers_lines_and_cuts_long_ones() -> None:
    data = io.BytesIO(b"short\n" + b"y" * 25 + b"\nlast")

    assert list(read_lines(data, max_bytes=10)) == [
        (1, b"short\n", False),
        (2, b"y" * 10, True),
        (3, b"last", False),
    ]


# -- batching and size ---------------------------------------------------------------


class CountingLog:
    """A fake that records the size of each append and passes it to a real log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.batches: list[int] = []

    def append_sync(self, envelopes: Sequence[NewEvent]) -> list[AppendResult]:
        self.batches.append(len(envelopes))
        return self.log.append_sync(envelopes)


def test_accepted_lines_are_appended_batch_size_at_a_time(log: EventLog) -> None:
    counting = CountingLog(log)
    lines = [line({**TRACK, "event_id": f"bet-{n}"}) for n in range(25)]

    summary = Run(counting, tenant="casino-a", environment="live", batch_size=10)(lines)

    assert counting.batches == [10, 10, 5]
    assert summary.stored == 25


def test_fifty_thousand_lines_stream_through_in_bounded_batches(
    log: EventLog, tmp_path: Path
) -> None:
    counting = CountingLog(log)
    kinds = [
        lambda n: {**TRACK, "event_id": f"bet-{n}"},
        lambda n: {**DEPOSIT, "data": {**DEPOSIT["data"], "unique_id": f"dep-{n}"}},
        lambda n: {**IDENTIFY, "traits": {"n": n}},
    ]
    source = tmp_path / "big.jsonl"
    with source.open("wb") as file:
        for n in range(50_000):
            file.write(line(kinds[n % 3](n)) + b"\n")
    progress: list[int] = []
    run = Run(counting, tenant="casino-a", environment="live")

    with source.open("rb") as stream:
        summary = import_lines(run.importer, stream, on_progress=progress.append,
                               progress_every=10_000)

    assert (summary.lines, summary.stored, summary.rejected) == (50_000, 50_000, 0)
    assert max(counting.batches) == 1_000
    assert progress == [10_000, 20_000, 30_000, 40_000, 50_000, 50_000]
    out = io.BytesIO()
    assert export_log(log, out).events == 50_000
    assert out.getvalue().count(b"\n") == 50_000


def test_bad_options_are_refused_naming_them(log: EventLog) -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        Run(log, batch_size=0)
    with pytest.raises(ValueError, match="environment must be one of live, staging"):
        Run(log, environment="prod")


# -- the command ---------------------------------------------------------------------


def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="playerlog")
    add_log_commands(parser.add_subparsers(dest="command", required=True))
    try:
        return run_log_command(parser.parse_args(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_a_clean_import_exits_zero_with_a_summary_and_no_rejects_file(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join([line(TRACK), line(IDENTIFY), line(DEPOSIT), line(TRACK)]))

    code = run_command(["log", "import", "--db", db, "--tenant", "casino-a", "--env", "live",
                        str(source)])

    out, err = capsys.readouterr()
    assert (code, out) == (0, "")
    assert f"imported {source}: 4 lines, 4 accepted (3 new, 1 duplicate), 0 rejected" in err
    assert not (tmp_path / "events.jsonl.rejects.jsonl").exists()


def test_rejected_lines_go_to_the_rejects_file_and_the_exit_status_is_one(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join([line(TRACK), b"oops", line({**TRACK, "user_id": 1})]))

    code = run_command(["log", "import", "--db", db, "--tenant", "casino-a", "--env", "live",
                        "--no-progress", str(source)])

    _, err = capsys.readouterr()
    assert code == 1
    rejects = [json.loads(r) for r in (tmp_path / "events.jsonl.rejects.jsonl").read_bytes()
               .splitlines()]
    assert [(r["line"], r["errors"][0]["field"]) for r in rejects] == [(2, "line"), (3, "user_id")]
    assert rejects[0]["text"] == "oops"
    assert "1 accepted (1 new, 0 duplicate), 2 rejected (0 conflicting)" in err
    assert "line 3: user_id: user_id must be a string, got integer" in err
    assert "events.jsonl.rejects.jsonl" in err


def test_a_rejects_file_left_by_an_earlier_run_is_emptied(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, rejects = tmp_path / "events.jsonl", tmp_path / "bad.jsonl"
    source.write_bytes(line(TRACK))
    rejects.write_text("stale\n")

    code = run_command(["log", "import", "--db", db, "--tenant", "casino-a", "--env", "live",
                        "--rejects", str(rejects), str(source)])

    assert code == 0
    assert rejects.read_bytes() == b""


def test_the_command_reads_stdin_and_takes_a_client_id(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(line(DEPOSIT) + b"\n")))

    code = run_command(["log", "import", "--db", db, "--tenant", "casino-a", "--env", "staging",
                        "--client-id", "backfill-2026", "-"])

    assert code == 0
    assert "imported stdin: 1 lines, 1 accepted" in capsys.readouterr().err
    with closing(open_log(db)) as log:
        (event,) = log.read()
    assert (event.environment, event.client_id) == ("staging", "backfill-2026")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.jsonl"], "No such file or directory"),
        (["--rejects", "events.jsonl", "events.jsonl"], "--rejects must not be the input file"),
    ],
)
def test_the_command_exits_two_when_it_cannot_run(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.jsonl").write_bytes(line(TRACK))

    code = run_command(["log", "import", "--db", db, *argv])

    assert code == 2
    assert message in capsys.readouterr().err


def test_the_tenants_catalogue_mode_applies_to_the_command(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAYERLOG_CATALOGUE_MODE", "strict")
    source = tmp_path / "events.jsonl"
    source.write_bytes(line({**TRACK, "event_name": "made_up_event"}))

    code = run_command(["log", "import", "--db", db, "--tenant", "casino-a", "--env", "live",
                        str(source)])

    assert code == 1
    assert "line 1: event_name:" in capsys.readouterr().err
