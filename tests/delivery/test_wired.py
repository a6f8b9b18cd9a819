"""Delivery is wired into the process that drives the projections: `serve`
with a destinations file delivers what the API accepts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api.app import build_services, create_asgi
from api.settings import Settings
from tests.delivery.receiver import Receiver

SECRET = "a-webhook-secret-of-32-characters!!"


def test_serve_with_a_destinations_file_delivers_accepted_events(tmp_path: Path) -> None:
    with Receiver(SECRET) as receiver:
        destinations = tmp_path / "destinations.toml"
        destinations.write_text(
            "[[destinations]]\n"
            'name = "crm"\ntenant = "casino-a"\nenvironment = "live"\nkind = "webhook"\n'
            f'webhook = {{ url = "{receiver.url}", secret = "{SECRET}" }}\n',
            encoding="utf-8",
        )
        settings = Settings(
            db_url=f"sqlite:///{tmp_path / 'wired.db'}",
            access_log=False,
            destinations=str(destinations),
        )
        services = build_services(settings)
        _, token = services.tokens.create(
            tenant="casino-a", environment="live", scopes=["events:write"]
        )
        events: list[dict[str, Any]] = [
            {"user_id": "ply_1", "event_id": f"e-{n}", "event_name": "login_success",
             "timestamp": "2026-05-18T14:38:00Z"}
            for n in range(3)
        ]
        try:
            with TestClient(create_asgi(services=services)) as client:
                response = client.post(
                    "/v1/events/track",
                    json={"events": events},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 202, response.text
                deadline = time.monotonic() + 20
                while receiver.event_ids() != {"e-0", "e-1", "e-2"}:
                    assert time.monotonic() < deadline, receiver.event_ids()
                    time.sleep(0.05)
        finally:
            services.close()
    assert receiver.bad_signatures == 0
