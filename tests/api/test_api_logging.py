"""Structured logs: one JSON access line per request on stdout, and the request's
`request_id` and `client_id` on every line logged while serving it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Response, get
from litestar.testing import TestClient

from api.access import AccessLog
from api.app import Services, build_services, create_app
from api.logs import bind_request, write_access_line
from api.settings import Settings
from eventstore import EventLog, open_backend
from tests.api.conftest import example
from tests.api.fakes import GatedBackend

ACCESS = "playerlog.access"
probe_log = logging.getLogger("playerlog.test_probe")


@get("/probe")
async def probe() -> Response[bytes]:
    """Logs twice while serving a request: from the handler's task, after a pause
    that lets other requests interleave, and from a worker thread."""
    probe_log.info("probe started")
    await asyncio.sleep(0.05)
    await asyncio.to_thread(probe_log.info, "probe in a thread")
    return Response(b"{}", media_type="application/json")


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[Services, GatedBackend, TestClient[Any]]]:
    """An app with its access log on, over a backend that can be made to fail."""
    backend = GatedBackend(open_backend(f"sqlite:///{tmp_path / 'l.db'}"))
    log = EventLog(backend)
    services = build_services(Settings(db_url=backend.url, access_log=True), log=log)
    app = create_app(services=services)
    app.register(probe)
    with TestClient(AccessLog(app, services.metrics)) as client:
        yield services, backend, client
    log.close()


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _headers(services: Services, **extra: str) -> dict[str, str]:
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json", **extra}


def test_one_json_access_line_per_request_with_the_documented_fields(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    services, _, client = logged
    body = json.loads(example("track_request.json"))
    del body["events"][1]["event_name"]
    headers = _headers(services, **{"X-Client-Id": "sdk-js/2.1"})
    capsys.readouterr()

    response = client.post("/v1/events/track", json=body, headers=headers)

    (line,) = [line for line in _lines(capsys) if line["logger"] == ACCESS]
    assert line["method"] == "POST"
    assert line["path"] == "/v1/events/track"
    assert line["status"] == 202
    assert (line["accepted"], line["rejected"]) == (1, 1)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["client_id"] == "sdk-js/2.1"
    assert line["level"] == "info"
    assert line["ts"].endswith("Z")


def test_every_request_gets_a_line_even_those_that_reach_no_route(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, client = logged
    capsys.readouterr()
    client.get("/healthz")
    client.get("/nowhere")
    client.post("/v1/events/track", content=b"{}", headers={"Content-Type": "application/json"})

    lines = [line for line in _lines(capsys) if line["logger"] == ACCESS]

    assert [(line["path"], line["status"]) for line in lines] == [
        ("/healthz", 200),
        ("/nowhere", 404),
        ("/v1/events/track", 401),
    ]
    assert all(line["client_id"] is None for line in lines)
    assert all(line["accepted"] is None for line in lines)
    assert len({line["request_id"] for line in lines}) == 3


def test_a_unified_batch_logs_its_item_count(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    services, _, client = logged
    headers = _headers(services)
    capsys.readouterr()
    client.post("/api/v1/events", content=example("unified_curl.json"), headers=headers)
    (line,) = [line for line in _lines(capsys) if line["logger"] == ACCESS]
    assert (line["status"], line["accepted"], line["rejected"]) == (204, 3, 0)


def test_a_request_id_sent_by_the_client_is_kept_and_echoed(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, client = logged
    capsys.readouterr()
    response = client.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    (line,) = [line for line in _lines(capsys) if line["logger"] == ACCESS]
    assert line["request_id"] == "trace-123"


def test_a_line_logged_while_serving_carries_the_requests_ids(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    services, backend, client = logged
    headers = _headers(services, **{"X-Client-Id": "vendor-7"})
    backend.fail_with = OSError("disk I/O error")
    capsys.readouterr()

    response = client.post("/api/v1/events", content=example("unified_curl.json"), headers=headers)

    assert response.status_code == 510
    lines = _lines(capsys)
    (failure,) = [line for line in lines if line["msg"] == "unified batch not stored"]
    (access,) = [line for line in lines if line["logger"] == ACCESS]
    assert failure["level"] == "error"
    assert failure["reason"] == "disk I/O error"
    assert failure["request_id"] == access["request_id"] == response.headers["x-request-id"]
    assert failure["client_id"] == access["client_id"] == "vendor-7"


def test_concurrent_requests_keep_their_own_ids_on_every_line(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, client = logged
    capsys.readouterr()
    ids = [f"req-{n}" for n in range(4)]
    threads = [
        threading.Thread(
            target=client.get,
            args=("/probe",),
            kwargs={"headers": {"X-Request-Id": rid, "X-Client-Id": f"client-of-{rid}"}},
        )
        for rid in ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    lines = [line for line in _lines(capsys) if line["logger"] == probe_log.name]

    assert len(lines) == 8
    for line in lines:
        assert line["client_id"] == f"client-of-{line['request_id']}"
    assert sorted(line["request_id"] for line in lines) == sorted(ids * 2)


def test_lines_logged_outside_a_request_carry_no_request_id(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, client = logged
    client.get("/healthz", headers={"X-Request-Id": "earlier"})
    capsys.readouterr()
    probe_log.info("between requests")
    (line,) = _lines(capsys)
    assert line["msg"] == "between requests"
    assert "request_id" not in line


def test_the_access_log_can_be_turned_off(
    client: TestClient[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = client.get("/healthz")
    assert response.headers["x-request-id"]
    assert [line for line in _lines(capsys) if line["logger"] == ACCESS] == []


def test_the_access_lines_fast_path_writes_what_the_logging_path_writes(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # The access line skips the logging module when its logger ends at our own handler;
    # a filter on the logger sends it the logging module's way. Both must give the same
    # line, key order included (only the timestamp may differ).
    access = logging.getLogger(ACCESS)
    args = ("POST", "/v1/events/track", 202, 50, 0, 1.25, "req-1", "sdk/1")
    capsys.readouterr()
    bind_request("req-1", "sdk/1")
    write_access_line(access, *args)
    access.addFilter(lambda _: True)
    try:
        write_access_line(access, *args)
    finally:
        access.filters.clear()
    fast, slow = capsys.readouterr().out.splitlines()

    assert re.fullmatch(r'\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",.*', fast)
    assert fast.split(",", 1)[1] == slow.split(",", 1)[1]
    assert json.loads(fast) | {"ts": None} == json.loads(slow) | {"ts": None}


def test_the_access_line_follows_the_log_level(
    logged: tuple[Services, GatedBackend, TestClient[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    access = logging.getLogger(ACCESS)
    capsys.readouterr()
    access.setLevel(logging.WARNING)
    try:
        write_access_line(access, "GET", "/healthz", 200, None, None, 0.5, "r", None)
    finally:
        access.setLevel(logging.NOTSET)
    assert capsys.readouterr().out == ""
