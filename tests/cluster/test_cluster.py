"""The scaled-out deployment as operators run it: 3 API processes (`playerlog serve
--workers 3 --no-projections`) and 2 `playerlog worker`s on one PostgreSQL database,
several clients sending at once, and the driving worker killed with SIGKILL mid-load.

Afterwards, whatever the kill interrupted:

* every acknowledged event is in the log exactly once, positions gap-free;
* the standby took over, and the read models equal a rebuild from zero;
* every event reached the webhook and the NATS stream at least once, each
  player's events in log order.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
import pytest
from psycopg import sql

from projections.standard import standard_projections
from tests.api.test_api_live_server import (
    PLAYERLOG,
    ROOT,
    _free_port,
    _wait_until_healthy,
)
from tests.delivery.receiver import Receiver

pytestmark = pytest.mark.postgres

TENANT, ENV = "casino-a", "live"
SECRET = "cluster-secret-0123456789"
CLIENTS = 4
BATCHES_PER_CLIENT = 30
BATCH = 20
PLAYERS = 25
KILL_AFTER_BATCHES = 25  # of all clients together: the kill lands mid-load
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Cluster:
    url: str
    db: str
    schema: str
    token: str
    workers: list[subprocess.Popen[bytes]]
    worker_logs: list[Path]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [*PLAYERLOG, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"playerlog {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as running:
        yield running


@pytest.fixture
def nats_stream(nats_url: str) -> Iterator[str]:
    name = f"CLUSTER_{uuid.uuid4().hex[:10].upper()}"
    yield name

    async def delete() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await client.close()

    asyncio.run(delete())


@pytest.fixture
def cluster(
    pg_url: str, pg_schema: str, tmp_path: Path, receiver: Receiver, nats_url: str,
    nats_stream: str,
) -> Iterator[Cluster]:
    env = {**os.environ, "PLAYERLOG_DB": pg_url, "PLAYERLOG_RUNNER_LOCK_POLL": "0.3"}
    env.pop("PLAYERLOG_VIEWS", None)
    token = json.loads(
        _run("tokens", "create", "--tenant", TENANT, "--env", ENV, "--scope", "events:write",
             "--scope", "projections:read", "--json", env=env)
    )["token"]
    destinations = tmp_path / "destinations.json"
    destinations.write_text(json.dumps({"destinations": [
        {"name": "crm", "tenant": TENANT, "environment": ENV, "kind": "webhook",
         "webhook": {"url": receiver.url, "secret": SECRET, "timeout": "2s"},
         "batch_size": 50, "retry": {"initial_backoff": "50ms", "max_backoff": "500ms"}},
        {"name": "broker", "tenant": TENANT, "environment": ENV, "kind": "nats",
         "nats": {"servers": nats_url, "subject_prefix": nats_stream.lower(),
                  "stream": nats_stream, "create_stream": True},
         "batch_size": 50, "retry": {"initial_backoff": "50ms", "max_backoff": "500ms"}},
    ]}))
    port = _free_port()
    serve_log = tmp_path / "serve.log"
    processes: list[subprocess.Popen[bytes]] = []
    with serve_log.open("wb") as sink:
        serve = subprocess.Popen(
            [*PLAYERLOG, "serve", "--workers", "3", "--no-projections", "--port", str(port)],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    processes.append(serve)
    workers, logs = [], []
    for index in range(2):
        log = tmp_path / f"worker{index}.log"
        with log.open("wb") as sink:
            worker = subprocess.Popen(
                [*PLAYERLOG, "worker", "--destinations", str(destinations)],
                cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            )
        workers.append(worker)
        logs.append(log)
        processes.append(worker)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, serve, serve_log)
        yield Cluster(url, pg_url, pg_schema, token, workers, logs, processes)
    finally:
        for process in processes:
            _stop(process)
    for log in (serve_log, *logs):
        assert "Traceback" not in log.read_text(), log.read_text()


def _driver(cluster: Cluster, *, timeout: float = 30) -> int:
    """The index of the worker that drives the projections (from its log line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, (worker, log) in enumerate(zip(cluster.workers, cluster.worker_logs,
                                                  strict=True)):
            if worker.poll() is None and f"(pid {worker.pid}) drives" in log.read_text():
                return index
        time.sleep(0.1)
    raise AssertionError("no worker drives the projections: " + " | ".join(
        log.read_text() for log in cluster.worker_logs))


def _event(rng: random.Random, player: str, sequence: int) -> dict[str, Any]:
    name = rng.choice(["bet_placed", "bet_placed", "bet_won", "deposit_success", "login_success"])
    properties: dict[str, Any] = {"currency": rng.choice(["EUR", "EUR", "GBP"]), "seq": sequence}
    if name == "bet_placed":
        properties |= {"bet_amount": f"{rng.randint(1, 500) / 10:.2f}", "wallet_type": "cash",
                       "game_id": f"game_{rng.randint(1, 5)}"}
    elif name == "bet_won":
        properties |= {"win_amount": f"{rng.randint(1, 900) / 10:.2f}",
                       "game_id": f"game_{rng.randint(1, 5)}"}
    elif name == "deposit_success":
        properties |= {"amount": f"{rng.randint(10, 300)}.25"}
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "user_id": player,
        "event_name": name,
        "timestamp": (T0 + timedelta(seconds=sequence)).isoformat().replace("+00:00", "Z"),
        "properties": properties,
    }


@dataclass
class Load:
    acknowledged: dict[str, int] = field(default_factory=dict)
    """event id → the position its request's answer reported (at least)."""
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(cluster: Cluster, load: Load, index: int) -> None:
    rng = random.Random(index)
    headers = {"Authorization": f"Bearer {cluster.token}"}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=30) as client:
        for number in range(BATCHES_PER_CLIENT):
            # Each client owns its players, so a player's events are sent in order.
            events = [
                _event(rng, f"p{index}_{rng.randrange(PLAYERS)}", number * BATCH + i)
                for i in range(BATCH)
            ]
            for attempt in range(2 if number % 7 == 0 else 1):  # some batches retried whole
                response = client.post("/v1/events/track", json={"events": events})
                assert response.status_code == 202, response.text
                body = response.json()
                assert body["accepted"] == BATCH, body
                position = int(response.headers["X-Log-Position"])
                assert body["position"] == position
                with load.lock:
                    if attempt == 0:
                        load.batches += 1
                    for event in events:
                        load.acknowledged.setdefault(event["event_id"], position)


def _log_rows(cluster: Cluster) -> list[tuple[int, str, str]]:
    with psycopg.connect(cluster.db.split("?")[0]) as conn:
        return conn.execute(
            sql.SQL("SELECT position, event_id, subject FROM {} ORDER BY position").format(
                sql.Identifier(cluster.schema, "events")
            )
        ).fetchall()


def _projections(cluster: Cluster) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{cluster.url}/v1/projections", headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    projections: list[dict[str, Any]] = response.json()["projections"]
    return projections


def _wait_for(what: str, done: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


async def _nats_events(url: str, stream: str) -> list[dict[str, Any]]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        return [
            json.loads((await js.get_msg(stream, seq)).data or b"{}")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await client.close()


def _in_order_per_player(received: list[dict[str, Any]], positions: dict[str, int]) -> None:
    """Each player's events, in the order first received, are in log position order,
    and each received event is the one the log holds at that position."""
    seen: set[str] = set()
    last: dict[str, int] = {}
    for event in received:
        assert positions[event["event_id"]] == event["position"]
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        player = event["subject"]
        assert event["position"] > last.get(player, 0), f"{player} out of order"
        last[player] = event["position"]


def _table_dump(cluster: Cluster, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(cluster.db.split("?")[0]) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(cluster.schema)))
        dump = {}
        for table in tables:
            columns = len(conn.execute(
                sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(table))
            ).description or ())
            order = sql.SQL(", ").join(sql.Literal(i) for i in range(1, columns + 1))
            dump[table] = conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY {}").format(sql.Identifier(table), order)
            ).fetchall()
        return dump


def test_three_apis_and_two_workers_keep_every_promise_across_a_sigkill(
    cluster: Cluster, receiver: Receiver, nats_url: str, nats_stream: str
) -> None:
    first = _driver(cluster)
    load = Load()
    clients = [
        threading.Thread(target=_client, args=(cluster, load, index)) for index in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    _wait_for("load under way", lambda: load.batches >= KILL_AFTER_BATCHES, timeout=60)
    os.kill(cluster.workers[first].pid, signal.SIGKILL)
    killed_at = load.batches
    cluster.workers[first].wait(10)
    for thread in clients:
        thread.join(120)
    assert killed_at < load.batches == CLIENTS * BATCHES_PER_CLIENT  # killed mid-load
    assert _driver(cluster) == 1 - first  # the standby took over

    # The log: every acknowledged event exactly once, positions 1..head without a gap.
    rows = _log_rows(cluster)
    head = len(rows)
    assert [position for position, _, _ in rows] == list(range(1, head + 1))
    positions = {event_id: position for position, event_id, _ in rows}
    assert len(positions) == head == CLIENTS * BATCHES_PER_CLIENT * BATCH
    assert set(load.acknowledged) == set(positions)
    assert all(positions[e] <= reported for e, reported in load.acknowledged.items())

    # Read your writes through any API process: every projection reaches the head.
    _wait_for("projections at the head", lambda: all(
        p["position"] == head for p in _projections(cluster)))
    states = _projections(cluster)
    assert all(p["state"] == "live" and p.get("error") is None for p in states), states
    reply = httpx.get(
        f"{cluster.url}/v1/players/p0_1", params={"min_position": head},
        headers={"Authorization": f"Bearer {cluster.token}"}, timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["position"] >= head

    # Destinations: every event at least once, in order per player.
    _wait_for("webhook delivery", lambda: receiver.event_ids() >= set(positions))
    _in_order_per_player(list(receiver.delivered), positions)
    assert receiver.bad_signatures == 0

    def nats_done() -> bool:
        return {e["event_id"] for e in asyncio.run(_nats_events(nats_url, nats_stream))} >= set(
            positions)

    _wait_for("NATS delivery", nats_done)
    _in_order_per_player(asyncio.run(_nats_events(nats_url, nats_stream)), positions)

    # The read models equal a rebuild from zero (built by the surviving worker, swapped in).
    tables = [base for projection in standard_projections() for base in projection.tables]
    live = _table_dump(cluster, tables)
    assert live["ledger"], "the ledger holds the money movements"
    env = {**os.environ, "PLAYERLOG_DB": cluster.db}
    _run("projections", "rebuild", "--all", "--no-wait", env=env)
    _wait_for("rebuild swapped in", lambda: all(
        p["state"] == "live" and p["position"] == head and p["build"] > 1
        for p in _projections(cluster)), timeout=120)
    assert _table_dump(cluster, tables) == live
