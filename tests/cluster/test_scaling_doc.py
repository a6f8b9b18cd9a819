"""docs/scaling.md's deployment commands work as written: tokens, destinations,
`serve --workers 4 --no-projections` and a `worker`, each run from the doc's own
text against the local PostgreSQL (a fresh schema instead of `playerlog`) and a
real webhook receiver; then an event posted to the API is read back with
`min_position` and delivered."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_api_live_server import ROOT, _free_port, _wait_until_healthy
from tests.cluster.test_cluster import SECRET, _stop
from tests.delivery.receiver import Receiver

pytestmark = pytest.mark.postgres

DOC = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
DOC_URL = "postgresql://postgres@127.0.0.1:5432/test?schema=playerlog"
LONG_RUNNING = ("serve", "worker")


def _commands() -> list[list[str]]:
    """The shell commands of the doc's "Running it" block, continuation lines joined,
    comments dropped."""
    section = DOC.split("## Running it", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, "docs/scaling.md has a sh block under 'Running it'"
    text = match.group(1).replace("\\\n", " ")
    return [
        shlex.split(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _as_here(command: list[str], url: str, port: int) -> list[str]:
    assert command[0] == ".venv/bin/playerlog", command
    args = [url if arg == DOC_URL else arg for arg in command[1:]]
    args = [str(port) if arg == "8001" else arg for arg in args]
    return [sys.executable, "-m", "api.cli", *args]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as running:
        yield running


def test_the_scaled_out_deployment_runs_as_the_doc_says(
    pg_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    commands = _commands()
    assert [c[1] for c in commands] == ["tokens", "tokens", "destinations", "serve", "worker"]
    assert all(DOC_URL in c for c in commands), "every command names the database"
    (tmp_path / "destinations.toml").write_text(
        "[[destinations]]\n"
        'name = "crm"\ntenant = "casino-a"\nenvironment = "live"\nkind = "webhook"\n'
        f'webhook = {{ url = "{receiver.url}", secret = "{SECRET}" }}\n'
        'retry = { initial_backoff = "50ms", max_backoff = "200ms" }\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PLAYERLOG_RUNNER_LOCK_POLL": "0.3"}
    env.pop("PLAYERLOG_DB", None)
    env.pop("PLAYERLOG_VIEWS", None)
    port = _free_port()
    tokens: list[str] = []
    running: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for command in commands:
            argv = _as_here(command, pg_url, port)
            if command[1] in LONG_RUNNING:
                logs.append(tmp_path / f"{command[1]}.log")
                with logs[-1].open("wb") as sink:
                    running.append(subprocess.Popen(
                        argv, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT))
                continue
            done = subprocess.run(
                argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{shlex.join(command)}: {done.stderr}"
            if command[1] == "tokens":
                tokens.append(done.stdout.splitlines()[0])  # the secret, shown once
        url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(url, running[0], logs[0])
        assert httpx.get(f"{url}/readyz", timeout=5).json()["status"] == "ready"

        writer, reader = tokens
        sent = httpx.post(
            f"{url}/v1/events/track", headers={"Authorization": f"Bearer {writer}"},
            json={"events": [{"user_id": "ply_1", "event_id": "dep-1",
                              "event_name": "deposit_success",
                              "timestamp": "2026-05-18T15:10:00Z",
                              "properties": {"amount": 100, "currency": "EUR"}}]},
            timeout=10,
        )
        assert sent.status_code == 202, sent.text
        position = sent.headers["X-Log-Position"]
        player = httpx.get(
            f"{url}/v1/players/ply_1", params={"min_position": position},
            headers={"Authorization": f"Bearer {reader}"}, timeout=10,
        )
        assert player.status_code == 200, player.text
        assert player.json()["money"]["EUR"]["deposits"]["total"] == "100"
        deadline = time.monotonic() + 30
        while receiver.event_ids() != {"dep-1"}:
            assert time.monotonic() < deadline, "the worker delivered to the webhook"
            time.sleep(0.1)
    finally:
        for process in running:
            _stop(process)
    for log in logs:
        assert "Traceback" not in log.read_text(), log.read_text()

