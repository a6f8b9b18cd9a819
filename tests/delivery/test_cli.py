"""`playerlog destinations ...`: the functions the `playerlog` command line calls,
run on a real database file as an operator would."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec
import pytest

from delivery.cli import add_destination_commands, run_destination_command
from delivery.store import DeadLetter, DestinationStore
from eventstore import open_log
from tests.delivery.helpers import SECRET, add_events, webhook_destination


def _run(db: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="playerlog")
    add_destination_commands(parser.add_subparsers(dest="command", required=True))
    return run_destination_command(parser.parse_args(["destinations", *argv, "--db", db]))


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'playerlog.db'}"
    log = open_log(url)
    try:
        add_events(log, 6)
        store = DestinationStore(log)
        destination = webhook_destination("https://crm.example/hooks")
        store.put(destination)
        state = store.state(destination)
        store.save_state(destination, state, msgspec.structs.replace(state, checkpoint=4))
        store.add_dead_letters(
            destination,
            [
                DeadLetter(
                    position=2,
                    event_id="ev-000001",
                    type="bet_placed",
                    subject="ply_1",
                    reason="HTTP 400: bad",
                    first_failure=1.7e9,
                    attempts=1,
                    dead_lettered_at=1.7e9,
                ),
            ],
        )
    finally:
        log.close()
    return url


def test_status_shows_checkpoint_head_and_lag(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(db, "status", "crm", "--json") == 0

    status = json.loads(capsys.readouterr().out)
    assert (status["checkpoint"], status["head"], status["lag"]) == (4, 6, 2)
    assert status["name"] == "crm"
    assert status["kind"] == "webhook"


def test_replay_moves_the_checkpoint_back(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(db, "replay", "crm", "--from-position", "2") == 0
    assert "checkpoint set to 1" in capsys.readouterr().out

    _run(db, "status", "--json")
    assert json.loads(capsys.readouterr().out)["checkpoint"] == 1


def test_replay_by_time_takes_an_iso_time_with_a_zone(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(db, "replay", "crm", "--from-time", "2025-01-31T12:00:03Z") == 0
    assert "checkpoint set to 0" in capsys.readouterr().out  # a minute's margin before


def test_a_replay_past_the_head_is_refused_naming_the_option(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(db, "replay", "crm", "--from-position", "99") == 2
    assert "from_position: must be 1 to 7" in capsys.readouterr().err


def test_dead_letters_are_listed_with_position_event_id_and_reason(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(db, "dead-letters", "crm", "--json") == 0

    letter = json.loads(capsys.readouterr().out)
    assert letter["position"] == 2
    assert letter["event_id"] == "ev-000001"
    assert letter["reason"] == "HTTP 400: bad"
    assert letter["attempts"] == 1
    assert letter["first_failure"].startswith("2023-11-14T22:13:20")


def test_an_unknown_destination_is_named(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(db, "status", "nope") == 1
    assert "no destination 'nope'" in capsys.readouterr().err


def test_apply_stores_a_file_and_list_hides_the_secret(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "destinations.toml"
    path.write_text(
        '[[destinations]]\nname = "dwh"\ntenant = "casino-a"\nenvironment = "staging"\n'
        f'kind = "webhook"\nwebhook = {{ url = "https://dwh.example/in", secret = "{SECRET}" }}\n'
    )

    assert _run(db, "apply", str(path)) == 0
    assert "stored dwh (casino-a/staging, webhook)" in capsys.readouterr().out
    assert _run(db, "list", "--json") == 0

    listed = capsys.readouterr().out
    assert SECRET not in listed
    assert [json.loads(line)["name"] for line in listed.splitlines()] == ["crm", "dwh"]


def test_apply_of_an_invalid_file_stores_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "destinations.json"
    path.write_text(
        json.dumps(
            {"destinations": [{"name": "x", "tenant": "t", "environment": "prod", "kind": "nats"}]}
        )
    )

    assert _run(db, "apply", str(path)) == 2
    assert "environment: 'prod' must be live or staging" in capsys.readouterr().err


def test_delete_removes_the_destination(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(db, "delete", "crm") == 0
    capsys.readouterr()
    assert _run(db, "list") == 0
    assert capsys.readouterr().out == ""
