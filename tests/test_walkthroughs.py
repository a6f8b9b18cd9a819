"""docs/walkthroughs.md works as written: an analyst's rebuild and an operator's
polling loop, each block run by bash against a live `playerlog serve`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.test_readme_quickstart import ROOT, server

__all__ = ["server"]  # the live-server fixture, shared with the quick start's test

WALKTHROUGHS = (ROOT / "docs" / "walkthroughs.md").read_text(encoding="utf-8")


def _block(title: str) -> str:
    section = WALKTHROUGHS.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, title
    return match.group(1)


def _run(script: str, port: int, env: dict[str, str]) -> str:
    script = script.replace("127.0.0.1:8001", f"127.0.0.1:{port}")
    script = script.replace(".venv/bin/playerlog", f"{sys.executable} -m api.cli")
    bin_dir = Path(sys.executable).parent  # the venv the tests run in, as `make` made it
    script = script.replace('"$PWD/.venv/bin', f'"{bin_dir}')
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _post_events(port: int, env: dict[str, str]) -> None:
    token = json.loads(subprocess.run(
        [sys.executable, "-m", "api.cli", "tokens", "create", "--tenant", "casino-a",
         "--env", "live", "--scope", "events:write", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout)["token"]
    events = [
        {"user_id": "ply_776192", "event_id": "dep-1", "event_name": "deposit_success",
         "timestamp": "2026-05-18T15:10:00Z", "properties": {"amount": 100, "currency": "EUR"}},
        {"user_id": "ply_776192", "event_id": "dep-2", "event_name": "deposit_success",
         "timestamp": "2026-05-18T15:20:00Z", "properties": {"amount": 21.70, "currency": "USD"}},
        {"user_id": "ply_42", "event_id": "login-1", "event_name": "login_success",
         "timestamp": "2026-05-18T15:30:00Z"},
    ]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events/track",
        data=json.dumps({"events": events}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["accepted"] == 3


@pytest.mark.skipif(not Path("/usr/bin/curl").exists(), reason="curl is not installed")
def test_the_analysts_rebuild_converts_money_with_the_new_rates(
    server: tuple[int, dict[str, str]],
) -> None:
    port, env = server
    _post_events(port, env)

    out = _run(_block("An analyst's rebuild"), port, env)

    lines = out.splitlines()
    assert "ledger: build 1 is active" in out  # the rebuild reached the head
    assert lines[lines.index("kind,currency,amount,amount_eur"):] == [
        "kind,currency,amount,amount_eur",
        "deposit,EUR,100,100",
        "deposit,USD,21.7,20.00",  # 21.70 / 1.0850, half-to-even to the cent
    ]


@pytest.mark.skipif(not Path("/usr/bin/curl").exists(), reason="curl is not installed")
def test_the_operators_polling_loop_lists_each_changed_player_once(
    server: tuple[int, dict[str, str]],
) -> None:
    port, env = server
    _post_events(port, env)

    out = _run(_block("An operator's polling loop"), port, env)

    listed = [line.split()[0] for line in out.splitlines()]
    assert sorted(listed) == ["ply_42", "ply_776192"]
