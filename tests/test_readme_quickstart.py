"""The README's quick start works as written, against a live `playerlog serve`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quickstart_block() -> str:
    """Every shell block of the quick start, in order, as one script."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return "".join(re.findall(r"```sh\n(.*?)```", section, re.DOTALL))


@pytest.fixture
def server(tmp_path: Path) -> tuple[int, dict[str, str]]:
    port = _free_port()
    env = {**os.environ, "PLAYERLOG_DB": f"sqlite:///{tmp_path / 'quick.db'}"}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("playerlog serve did not come up")
    yield port, env
    process.terminate()
    process.wait(10)


@pytest.mark.skipif(not Path("/usr/bin/curl").exists(), reason="curl is not installed")
def test_quick_start_accepts_a_first_event_and_reads_it_back(
    server: tuple[int, dict[str, str]],
) -> None:
    port, env = server
    script = _quickstart_block()
    script = script.replace("127.0.0.1:8001", f"127.0.0.1:{port}")
    script = script.replace(".venv/bin/playerlog", f"{sys.executable} -m api.cli")
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = re.findall(r"^# (.*)$", script, re.MULTILINE)  # each command's output
    assert result.stdout.strip().splitlines() == expected
