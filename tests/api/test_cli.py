"""The `playerlog` command line, run in-process: tokens create/list/revoke on the
database directly, `--db` and PLAYERLOG_DB, clear errors, and help for everything."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import build_services, create_asgi
from api.cli import build_parser, main
from api.settings import Settings
from api.tokens import TokenService
from eventstore import open_log
from tests.api.conftest import example

PUBLIC_FIELDS = {
    "id", "name", "tenant", "environment", "scopes", "created_at", "expires_at", "revoked_at"
}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's own errors and --help
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _create(capsys: pytest.CaptureFixture[str], db: str, *extra: str) -> dict[str, Any]:
    code, out, err = _run(
        capsys, "tokens", "create", "--db", db, "--tenant", "T", "--env", "live",
        "--scope", "events:write", "--json", *extra,
    )
    assert (code, err) == (0, "")
    created: dict[str, Any] = json.loads(out)
    return created


@pytest.fixture
def app_on(db: str) -> Iterator[TestClient[Any]]:
    """The app over the database the command line wrote to (opened afterwards)."""
    services = build_services(Settings(db_url=db, access_log=False))
    with TestClient(create_asgi(services=services)) as client:
        yield client
    services.log.close()


def _track(client: TestClient[Any], secret: str) -> int:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    status: int = client.post(
        "/v1/events/track", content=example("track_curl.json"), headers=headers
    ).status_code
    return status


def test_create_json_prints_an_object_whose_token_works_against_the_app(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    created = _create(capsys, db, "--name", "first", "--scope", "admin")

    assert set(created) == PUBLIC_FIELDS | {"token"}
    assert created["token"].startswith(f"plk_{created['id']}_")
    assert (created["tenant"], created["environment"]) == ("T", "live")
    assert created["scopes"] == ["admin", "events:write"]
    assert created["name"] == "first"
    assert created["expires_at"] is None
    services = build_services(Settings(db_url=db, access_log=False))
    with TestClient(create_asgi(services=services)) as client:
        assert _track(client, created["token"]) == 202
    services.log.close()


def test_create_without_json_prints_the_secret_first_and_says_it_is_shown_once(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    code, out, _ = _run(
        capsys, "tokens", "create", "--db", db, "--tenant", "T", "--env", "staging",
        "--scope", "events:write",
    )
    assert code == 0
    secret = out.splitlines()[0]
    assert re.fullmatch(r"plk_[0-9a-f]{16}_[A-Za-z0-9_-]+", secret)
    assert "shown only now" in out
    assert "env staging" in out


def test_expires_in_sets_the_expiry(capsys: pytest.CaptureFixture[str], db: str) -> None:
    created = _create(capsys, db, "--expires-in", "30d")
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert lifetime == timedelta(days=30)


def test_list_shows_the_token_without_its_secret(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    created = _create(capsys, db, "--name", "vendor-x")

    code, out, _ = _run(capsys, "tokens", "list", "--db", db)
    assert code == 0
    (line,) = out.splitlines()
    assert line.split()[:5] == [created["id"], "T", "live", "events:write", "active"]
    assert "vendor-x" in line
    assert created["token"] not in out

    code, out, _ = _run(capsys, "tokens", "list", "--db", db, "--json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert set(listed) == PUBLIC_FIELDS
    assert created["token"] not in out


def test_list_filters_by_tenant(capsys: pytest.CaptureFixture[str], db: str) -> None:
    _create(capsys, db)
    _run(capsys, "tokens", "create", "--db", db, "--tenant", "U", "--env", "live",
         "--scope", "admin")
    _, out, _ = _run(capsys, "tokens", "list", "--db", db, "--tenant", "U")
    assert [line.split()[1] for line in out.splitlines()] == ["U"]


def test_revoke_stops_the_token(capsys: pytest.CaptureFixture[str], db: str) -> None:
    created = _create(capsys, db)

    code, out, _ = _run(capsys, "tokens", "revoke", "--db", db, created["id"])

    assert code == 0
    assert out == f"revoked {created['id']}\n"
    _, listing, _ = _run(capsys, "tokens", "list", "--db", db)
    assert "revoked" in listing
    services = build_services(Settings(db_url=db, access_log=False))
    with TestClient(create_asgi(services=services)) as client:
        assert _track(client, created["token"]) == 401
    services.log.close()


def test_revoking_an_unknown_id_fails_clearly(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    code, _, err = _run(capsys, "tokens", "revoke", "--db", db, "0123456789abcdef")
    assert code != 0
    assert "no token 0123456789abcdef" in err


def test_playerlog_db_is_used_when_db_is_not_given(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from_env = f"sqlite:///{tmp_path / 'env.db'}"
    explicit = f"sqlite:///{tmp_path / 'flag.db'}"
    monkeypatch.setenv("PLAYERLOG_DB", from_env)

    code, out, _ = _run(
        capsys, "tokens", "create", "--tenant", "E", "--env", "live", "--scope", "admin",
        "--json",
    )
    assert code == 0
    env_token = json.loads(out)["id"]
    flag_token = _create(capsys, explicit)["id"]

    _, env_list, _ = _run(capsys, "tokens", "list")
    _, flag_list, _ = _run(capsys, "tokens", "list", "--db", explicit)
    assert env_token in env_list
    assert flag_token not in env_list
    assert flag_token in flag_list
    assert env_token not in flag_list
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "root"], "invalid choice: 'root'"),
        (["--scope", "events:write", "--expires-in", "soon"], "expires_in 'soon'"),
        (["--scope", "events:write", "--expires-in", "0d"], "longer than zero"),
        (["--scope", "events:write", "--expires-in=-5d"], "expires_in '-5d'"),
        (["--scope", "events:write", "--env", "prod"], "invalid choice: 'prod'"),
        (["--scope", "events:write", "--tenant", " "], "tenant must not be empty"),
        ([], "--scope"),
    ],
    ids=["unknown-scope", "bad-duration", "zero-duration", "negative-duration", "unknown-env",
         "blank-tenant", "no-scope"],
)
def test_bad_input_exits_non_zero_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], db: str, args: list[str], message: str
) -> None:
    base = ["tokens", "create", "--db", db, "--tenant", "T", "--env", "live"]
    code, out, err = _run(capsys, *base, *args)
    assert code != 0
    assert out == ""
    assert message in err
    _, listing, _ = _run(capsys, "tokens", "list", "--db", db)
    assert listing == "", "nothing was created"


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, dict[str, str]]]:
    """Every (command path, parser, help of its sub-commands) in the tree."""
    subcommand_help: dict[str, str] = {}
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommand_help.update({c.dest: c.help or "" for c in action._choices_actions})
            children.extend(action.choices.items())
    yield path, parser, subcommand_help
    for name, child in children:
        yield from _parsers(child, (*path, name))


PARSERS = list(_parsers(build_parser()))


def test_the_command_tree_is_the_documented_one() -> None:
    assert [path for path, _, _ in PARSERS] == [
        (), ("serve",), ("worker",), ("projections",), ("projections", "status"),
        ("projections", "rebuild"), ("projections", "retry"), ("projections", "skip"),
        ("projections", "cancel"), ("log",), ("log", "export"), ("log", "import"),
        ("destinations",), ("destinations", "list"), ("destinations", "status"),
        ("destinations", "apply"), ("destinations", "delete"), ("destinations", "replay"),
        ("destinations", "dead-letters"),
        ("tokens",), ("tokens", "create"), ("tokens", "list"), ("tokens", "revoke"),
    ]


@pytest.mark.parametrize(
    ("path", "parser", "subcommands"),
    PARSERS,
    ids=[" ".join(p) or "playerlog" for p, _, _ in PARSERS],
)
def test_every_command_and_option_appears_in_its_help(
    capsys: pytest.CaptureFixture[str],
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    subcommands: dict[str, str],
) -> None:
    code, out, _ = _run(capsys, *path, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert parser.description or parser.prog == "playerlog", path
    if parser.description:
        assert " ".join(parser.description.split()) in text
    for name, help_text in subcommands.items():
        assert help_text.strip(), f"{name} has no help"
        assert name in text
        assert help_text in text
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        assert action.help, action.dest
        assert action.help != argparse.SUPPRESS, action.dest
        names = action.option_strings or [action.metavar or action.dest]
        for name in names:
            assert str(name) in text, name
        assert " ".join(action.help.split()) in text, action.dest


def test_every_command_that_opens_the_database_takes_db() -> None:
    for path, parser, subcommands in PARSERS:
        if subcommands:
            continue
        options = {o for action in parser._actions for o in action.option_strings}
        assert "--db" in options, path


def test_list_tells_an_expired_token_from_an_active_one(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    log = open_log(db)
    long_ago = TokenService(log, clock=lambda: datetime(2020, 1, 1, tzinfo=UTC))
    old, _ = long_ago.create(
        tenant="T", environment="live", scopes=["events:write"], expires_in=timedelta(days=1)
    )
    log.close()
    fresh = _create(capsys, db)

    _, out, _ = _run(capsys, "tokens", "list", "--db", db)

    states = {line.split()[0]: line.split()[4] for line in out.splitlines()}
    assert states == {old.id: "expired", fresh["id"]: "active"}
