"""`playerlog serve` as a real process on a free port, driven the way integrators
will: the spec's Python `requests` examples run unchanged (host, port and token
filled in), and its cURL examples through curl."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.cli import main
from eventstore import open_log
from tests.api.conftest import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("playerlog")
# The installed command, run from outside the checkout (as a user would), when the
# virtualenv has it; else the module, from the checkout.
PLAYERLOG = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "api.cli"]
SPEC_HOST = "<host>:8001"
SPEC_TOKEN = "<your_token>"


@dataclass
class Server:
    url: str
    db: str
    token: str
    stdout: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], stdout: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"playerlog serve exited with {process.returncode}: {stdout.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail("playerlog serve did not answer /healthz within 20 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("live")
    db = f"sqlite:///{tmp / 'live.db'}"
    # The first token comes from the command line, before any server runs.
    created = tmp / "token.json"
    with created.open("w") as out:
        subprocess.run(
            [*PLAYERLOG, "tokens", "create", "--db", db, "--tenant", "casino-a", "--env",
             "live", "--scope", "events:write", "--json"],
            cwd=tmp if _SCRIPT.exists() else ROOT, stdout=out, check=True, timeout=60,
        )
    token = json.loads(created.read_text())["token"]
    port = _free_port()
    stdout = tmp / "server.out"
    with stdout.open("wb") as sink:
        process = subprocess.Popen(
            [*PLAYERLOG, "serve", "--db", db, "--port", str(port)],
            cwd=tmp if _SCRIPT.exists() else ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, stdout)
        yield Server(url, db, token, stdout)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal.
    assert process.returncode in (0, -signal.SIGTERM), stdout.read_text()
    assert "Traceback" not in stdout.read_text()


def _spec_script(name: str, server: Server) -> str:
    """The spec's example as published, with host, port and token filled in, and the
    one indent it lost restored (the body of its `for` loop; DESIGN.md)."""
    source = (EXAMPLES / name).read_text()
    assert source.count(SPEC_HOST) == 1
    assert source.count(SPEC_TOKEN) == 1
    source = source.replace(SPEC_HOST, server.url.removeprefix("http://"))
    source = source.replace(SPEC_TOKEN, server.token)
    lines = source.splitlines()
    loops = [i for i, line in enumerate(lines) if line.startswith("for ") and line.endswith(":")]
    if loops:
        (loop,) = loops
        assert not lines[loop + 1].startswith(" ")
        with pytest.raises(IndentationError):
            compile(source, name, "exec")
        lines[loop + 1] = "    " + lines[loop + 1]
    return "\n".join(lines) + "\n"


def _run_python(script: str, tmp_path: Path) -> str:
    path = tmp_path / "example.py"
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_specs_python_track_example_runs_unchanged(server: Server, tmp_path: Path) -> None:
    script = _spec_script("track_requests.py.txt", server)
    assert _run_python(script, tmp_path) == "Accepted: 1, Rejected: 0\n"
    # Run again, as a retrying client would: a duplicate still counts as accepted.
    assert _run_python(script, tmp_path) == "Accepted: 1, Rejected: 0\n"


def test_the_specs_python_identify_example_runs_unchanged(
    server: Server, tmp_path: Path
) -> None:
    script = _spec_script("identify_requests.py.txt", server)
    assert _run_python(script, tmp_path) == "Profile updated for: ply_776192\n"


def test_the_python_examples_print_the_errors_of_rejected_events(
    server: Server, tmp_path: Path
) -> None:
    # The restored loop body runs: a later event with the example's id conflicts.
    original = _spec_script("track_requests.py.txt", server)
    assert _run_python(original, tmp_path) == "Accepted: 1, Rejected: 0\n"
    script = original.replace('"2026-05-18T15:10:00.000Z"', '"2026-05-18T15:11:00.000Z"')
    out = _run_python(script, tmp_path).splitlines()
    assert out[0] == "Accepted: 0, Rejected: 1"
    assert out[1].startswith("Event[0] failed: EVENT_ID_CONFLICT - event_id a1b2c3d4-")
    assert "differs in: timestamp" in out[1]


curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@curl
def test_the_specs_curl_track_example(server: Server) -> None:
    done = subprocess.run(
        ["curl", "-s", "-X", "POST", f"{server.url}/v1/events/track",
         "-H", f"Authorization: Bearer {server.token}",
         "-H", "Content-Type: application/json",
         "-d", f"@{EXAMPLES / 'track_curl.json'}"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    body = json.loads(done.stdout)
    assert (body["accepted"], body["rejected"], body["errors"]) == (1, 0, [])


@curl
def test_the_specs_curl_unified_example_gets_an_empty_204(server: Server) -> None:
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
         "--request", "POST", "--url", f"{server.url}/api/v1/events",
         "--header", f"Authorization: Bearer {server.token}",
         "--header", "Content-Type: application/json",
         "--data", f"@{EXAMPLES / 'unified_curl.json'}"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    assert done.stdout == "204 0"


def _post(server: Server, path: str, example: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=(EXAMPLES / example).read_bytes(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status, response.read()


def test_the_server_writes_json_access_lines(server: Server) -> None:
    status, _ = _post(
        server, "/v1/events/track", "track_request.json",
        Authorization=f"Bearer {server.token}", **{"X-Client-Id": "live-test"},
    )
    assert status == 202
    deadline = time.monotonic() + 5
    mine: list[dict[str, object]] = []
    while not mine and time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.stdout.read_text().splitlines()
                 if line.startswith("{")]
        mine = [line for line in lines if line.get("client_id") == "live-test"]
        time.sleep(0.02)
    (line,) = mine
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/events/track", 202)
    assert (line["accepted"], line["rejected"]) == (2, 0)
    assert line["request_id"]


def test_what_the_server_accepted_is_in_the_database(server: Server) -> None:
    status, _ = _post(
        server, "/v1/events/track", "track_curl.json", Authorization=f"Bearer {server.token}"
    )
    assert status == 202
    log = open_log(server.db)
    try:
        stored = log.read(tenant="casino-a", environment="live")
        head = log.head()
    finally:
        log.close()
    assert "a1b2c3d4-0000-0000-0000-0007" in {e.event_id for e in stored}
    with urllib.request.urlopen(f"{server.url}/readyz", timeout=5) as response:
        assert json.loads(response.read())["head"] == head


def test_tokens_created_while_the_server_runs_work_at_once(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["tokens", "create", "--db", server.db, "--tenant", "casino-b", "--env",
                 "staging", "--scope", "events:write", "--json"]) == 0
    token = json.loads(capsys.readouterr().out)["token"]
    status, body = _post(
        server, "/v1/events/identify", "identify_vip_upgrade.json",
        Authorization=f"Bearer {token}",
    )
    assert status == 202
    assert json.loads(body) == {"user_id": "ply_776192"}
