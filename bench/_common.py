"""Pieces every benchmark shares: realistic events, the machine, medians, tables."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from eventstore import Envelope

T = TypeVar("T")

TENANT = "casino-a"
ENVIRONMENT = "live"
CLIENT_ID = "web-sdk-3.2"
T0 = datetime(2026, 5, 18, 15, 16, tzinfo=UTC)

# -- events shaped like the spec's track events ------------------------------------

_GAMES = (
    "gates_of_olympus",
    "sweet_bonanza",
    "book_of_dead",
    "starburst",
    "lightning_roulette",
    "big_bass_bonanza",
    "mega_moolah",
)
_PROVIDERS = ("pragmatic_play", "play_n_go", "netent", "evolution", "microgaming")
_CURRENCIES = ("EUR", "GBP", "SEK", "CAD")
_DEVICES = ("ios", "android", "desktop", "mobile_web")
_METHODS = ("card", "trustly", "paypal", "skrill", "apple_pay")
# (event_name, weight): bets dominate an iGaming stream.
_NAMES = (
    ("bet_placed", 40),
    ("bet_settled", 35),
    ("game_started", 10),
    ("deposit_success", 5),
    ("login", 5),
    ("page_viewed", 5),
)
_NAME_LIST = [name for name, _ in _NAMES]
_NAME_WEIGHTS = [weight for _, weight in _NAMES]


def _properties(rng: random.Random, name: str) -> str:
    """The `properties` object of one event, as JSON text."""
    game = rng.choice(_GAMES)
    currency = rng.choice(_CURRENCIES)
    if name == "bet_placed":
        return (
            f'{{"bet_amount":{rng.randint(1, 50)},"currency":"{currency}",'
            f'"game_id":"{game}","round_id":"rnd_{rng.getrandbits(48):012x}"}}'
        )
    if name == "bet_settled":
        return (
            f'{{"bet_amount":{rng.randint(1, 50)},"win_amount":{rng.randint(0, 900)}.'
            f'{rng.randint(0, 99):02d},"currency":"{currency}","game_id":"{game}",'
            f'"round_id":"rnd_{rng.getrandbits(48):012x}"}}'
        )
    if name == "game_started":
        return (
            f'{{"game_id":"{game}","provider":"{rng.choice(_PROVIDERS)}",'
            f'"device":"{rng.choice(_DEVICES)}"}}'
        )
    if name == "deposit_success":
        return (
            f'{{"amount":{rng.randint(10, 500)}.00,"currency":"{currency}",'
            f'"payment_method":"{rng.choice(_METHODS)}",'
            f'"transaction_id":"txn_{rng.getrandbits(64):016x}"}}'
        )
    if name == "login":
        return f'{{"method":"password","device":"{rng.choice(_DEVICES)}","country":"MT"}}'
    return f'{{"page":"/casino/{game}","referrer":"/lobby","device":"{rng.choice(_DEVICES)}"}}'


def track_event(rng: random.Random, index: int) -> Envelope:
    """One track event: a random UUID v4 event id (as clients send) and a JSON
    payload of about 200-300 bytes."""
    name = rng.choices(_NAME_LIST, _NAME_WEIGHTS)[0]
    event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    user = f"ply_{rng.randint(100_000, 999_999)}"
    occurred = T0 + timedelta(milliseconds=index)
    stamp = occurred.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = (
        f'{{"user_id":"{user}","session_id":"sess_{rng.getrandbits(32):08x}",'
        f'"event_id":"{event_id}","event_name":"{name}","timestamp":"{stamp}",'
        f'"properties":{_properties(rng, name)}}}'
    )
    return Envelope(
        tenant=TENANT,
        environment=ENVIRONMENT,
        source="track",
        type=name,
        event_id=event_id,
        subject=user,
        occurred_at=occurred,
        # A request's events share one arrival time; say one request a second.
        received_at=T0 + timedelta(seconds=index // 1000 + 1),
        client_id=CLIENT_ID,
        payload=payload.encode(),
    )


def track_events(count: int, seed: int, start: int = 0) -> list[Envelope]:
    """`count` events; the same seed gives the same events (ids included)."""
    rng = random.Random(seed)
    return [track_event(rng, start + i) for i in range(count)]


def event_stream(seed: int, chunk: int) -> Iterator[list[Envelope]]:
    """Endless chunks of fresh events (for filling a large log)."""
    rng = random.Random(seed)
    index = 0
    while True:
        yield [track_event(rng, index + i) for i in range(chunk)]
        index += chunk


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def mean_payload_bytes(events: Sequence[Envelope]) -> float:
    return sum(len(e.payload) for e in events) / len(events) if events else 0.0


# -- numbers -----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> float | None:
    """(max - min) / median; None for fewer than two values."""
    if len(values) < 2:
        return None
    return (max(values) - min(values)) / statistics.median(values)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def fmt_count(value: int) -> str:
    """1000000 -> 1M, 10000 -> 10k."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if value >= size and value % (size // 10 or 1) == 0:
            text = f"{value / size:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return str(value)


# -- tables ------------------------------------------------------------------------


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers (and '-') right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if _numeric(cell) else cell.ljust(width)
            for cell, width in zip(cells, widths, strict=True)
        ]
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---:" if rows and _numeric(rows[0][i]) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    stripped = cell.replace(",", "").replace(".", "").removesuffix("x").removesuffix("%")
    return stripped == "-" or stripped.lstrip("+-").isdigit()


# -- the machine -------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    date: str
    host: str
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    sqlite: str
    postgres: str
    eventsourcing: str
    psycopg: str
    event_loop: str
    commit: str
    sources: str

    def lines(self) -> list[str]:
        return [
            f"date          {self.date}",
            f"machine       {self.host}: {self.cpus} CPUs ({self.cpu_model}), "
            f"{self.memory_gib:.0f} GiB RAM, Linux {self.kernel}",
            f"python        {self.python} ({self.event_loop})",
            f"sqlite        {self.sqlite}",
            f"postgresql    {self.postgres}",
            f"libraries     eventsourcing {self.eventsourcing}, psycopg {self.psycopg}",
            f"playerlog     {self.commit}; eventstore/*.py sha256 {self.sources}",
        ]


def describe_machine(postgres: str, event_loop: str) -> Machine:
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        host=platform.node(),
        cpus=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        memory_gib=_memory_gib(),
        kernel=platform.release(),
        python=sys.version.split()[0],
        sqlite=sqlite3.sqlite_version,
        postgres=postgres,
        eventsourcing=_version("eventsourcing"),
        psycopg=_version("psycopg"),
        event_loop=event_loop,
        commit=_commit(),
        sources=_sources_digest(),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _sources_digest() -> str:
    """A short digest of the log's sources: which code a table came from, even
    with uncommitted changes in the checkout."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parent.parent / "eventstore").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _commit() -> str:
    """The checkout's commit (read-only: `git rev-parse`)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"commit {done.stdout.strip()}"
