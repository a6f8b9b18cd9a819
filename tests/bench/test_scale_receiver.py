"""bench/scale's webhook receiver verifies what it counts: a signed batch is counted, a
tampered or stale one is refused with 401 (so a delivery figure is never of requests a
real receiver would have refused)."""

from __future__ import annotations

import time

import httpx
import pytest

from bench import scale_receiver
from delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

SECRET = "bench-receiver-test-secret-0123"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setattr(scale_receiver, "_SECRET", SECRET.encode())
    monkeypatch.setattr(
        scale_receiver, "_counts", {"requests": 0, "events": 0, "bad_signatures": 0}
    )
    transport = httpx.ASGITransport(app=scale_receiver.app)
    return httpx.AsyncClient(transport=transport, base_url="http://receiver")


def _headers(body: bytes, timestamp: str) -> dict[str, str]:
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(SECRET, timestamp, body)}


async def test_signed_batches_are_counted_and_bad_ones_refused(client: httpx.AsyncClient) -> None:
    body = b'{"events":[{"position":1,"event_id":"a"},{"position":2,"event_id":"b"}]}'
    now = str(int(time.time()))
    async with client:
        ok = await client.post("/hooks/x", content=body, headers=_headers(body, now))
        tampered = await client.post(
            "/hooks/x", content=body.replace(b"2", b"3"), headers=_headers(body, now)
        )
        stale = str(int(time.time()) - 3600)
        old = await client.post("/hooks/x", content=body, headers=_headers(body, stale))
        counts = (await client.get("/count")).json()

    assert ok.status_code == 200
    assert tampered.status_code == 401
    assert old.status_code == 401
    assert counts == {"requests": 3, "events": 2, "bad_signatures": 2}
