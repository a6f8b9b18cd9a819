"""Reads from PostgreSQL read models served by a process that does not drive them:
`?min_position=N` answers once another process's worker has applied N."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import build_services, create_asgi
from api.settings import Settings
from tests.eventstore.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["pg_base_url", "pg_schema", "pg_url"]

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _headers(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def test_an_api_only_process_answers_min_position_once_another_processs_worker_reaches_it(
    pg_url: str,
) -> None:
    settings = Settings(
        db_url=pg_url, access_log=False, run_projections=False, min_position_timeout=20
    )
    services = build_services(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--db", pg_url],
        cwd=ROOT,
        env={**os.environ, "PLAYERLOG_RUNNER_LOCK_POLL": "0.2", "PLAYERLOG_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, secret = services.tokens.create(
            tenant="casino-a",
            environment="live",
            scopes=["events:write", "projections:read"],
        )
        headers = _headers(secret)
        with TestClient(create_asgi(services=services)) as client:
            deadline = time.monotonic() + 30
            while (client.get("/v1/projections", headers=headers).json()["runner"] or {}).get(
                "pid"
            ) != worker.pid:
                assert worker.poll() is None, worker.communicate()[1].decode()
                assert time.monotonic() < deadline, "the worker process never drove"
                time.sleep(0.05)
            response = client.post(
                "/v1/events/identify",
                json={"user_id": "ply_1", "timestamp": "2026-05-18T14:38:00Z",
                      "traits": {"country": "MT"}},
                headers=headers,
            )
            assert response.status_code == 202, response.text
            response = client.post(
                "/v1/events/track",
                json={"events": [{"user_id": "ply_1", "event_name": "login_success",
                                  "timestamp": "2026-05-18T14:40:00Z"}]},
                headers=headers,
            )
            assert response.status_code == 202, response.text
            written = int(response.headers["X-Log-Position"])

            player = client.get(f"/v1/players/ply_1?min_position={written}", headers=headers)
            listed = client.get(f"/v1/players?min_position={written}", headers=headers)

        assert player.status_code == 200, player.text
        body: dict[str, Any] = player.json()
        assert (body["traits"], body["login_count"]) == ({"country": "MT"}, 1)
        assert body["position"] >= written
        assert [p["user_id"] for p in listed.json()["items"]] == ["ply_1"]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            assert worker.wait(20) == 0, worker.communicate()[1].decode()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            if worker.stderr is not None:
                worker.stderr.close()
            services.close()
