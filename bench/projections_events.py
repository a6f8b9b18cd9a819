"""Mixed player events for bench/projections, made the way the API makes them.

A seeded generator writes *requests* (track batches, identify calls, unified batches)
as the spec's clients send them, runs each through the ingest decoder the API uses
(`decode_track`, `decode_identify`, `decode_unified`), and appends the envelopes to a
normal playerlog log with `EventLog.append_sync`. So the projections read exactly the
payloads production would give them, and the same seed always gives the same log.

The mix, by share of events (realistic for a casino: mostly play; measured on 200k):

* unified `gameround` bets, and wins paired to them by `round_id`: about 46%;
* track play (`bet_placed`, `bet_won` and `bet_lost` carrying the round's `round_id`,
  `slot_spin_completed`): about 26%;
* logins (track `login_success`, unified `login`): about 3.3%;
* money in and out (track `deposit_success`, `withdrawal_completed`, unified `deposit`,
  `withdraw`) and the ledger's other movements (`cashback_credited`,
  `refund_processed`, `manual_adjustment_credit` / `_debit`): about 3.4%;
* identify calls with traits (one in ten late, some unsetting a trait, half of them
  linking the player's anonymous id, whose pre-login browsing is in the log too):
  about 1.7%;
* unified `player` and `game` items: about 0.4%;
* the rest of the taxonomy (sessions, pages, game starts, wallet updates, and every
  other catalogue name, with properties from its table where the spec gives one):
  about 19%.

Players are `ply_<n>`; activity is skewed (a few players play a lot). Generated logs
are cached (`cached_log`) keyed by seed and size, so a rerun does not regenerate 10M
events.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from eventstore import open_log
from ingest import (
    Envelope,
    decode_identify,
    decode_track,
    decode_unified,
    default_catalogue,
)

TENANT: Final = "casino-a"
ENVIRONMENT: Final = "live"
CLIENT_ID: Final = "bench-projections"
T0: Final = datetime(2026, 5, 18, 6, 0, tzinfo=UTC)
STEP_MS: Final = 7
"""Event time moves on by this much per event: 1M events span about two hours."""

TRACK_BATCH: Final = 50
UNIFIED_BATCH: Final = 500
APPEND_CALL: Final = 20_000
GAMES: Final = 400
CACHE_VERSION: Final = 1
"""Raise when the generator changes, so cached logs of the old mix are not reused."""

_CURRENCIES: Final = ("EUR", "EUR", "EUR", "EUR", "GBP", "SEK", "CAD")
_PROVIDERS: Final = ("pragmatic_play", "play_n_go", "netent", "evolution", "hacksaw")
_METHODS: Final = ("visa", "mastercard", "trustly", "paypal", "skrill", "apple_pay")
_VIP: Final = ("bronze", "silver", "gold", "platinum")
_COUNTRIES: Final = ("MT", "SE", "GB", "DE", "CA", "FI", "NO")

# Request kinds and their weights per 1,000 requests; with 50 events a track batch, 500
# items a unified one and one identify call a request, these give the shares above.
_REQUEST_KINDS: Final = (("track", 350), ("unified", 35), ("identify", 615))

# Track event names by weight (per 10,000 track events).
_TRACK_PLAY: Final = (
    ("bet_placed", 2200),
    ("bet_won", 800),
    ("bet_lost", 1100),
    ("slot_spin_completed", 1000),
)
_TRACK_OTHER: Final = (
    ("login_success", 520),
    ("deposit_success", 200),
    ("withdrawal_completed", 60),
    ("cashback_credited", 30),
    ("refund_processed", 15),
    ("manual_adjustment_credit", 10),
    ("manual_adjustment_debit", 5),
    ("session_started", 500),
    ("page_viewed", 500),
    ("game_started", 350),
    ("wallet_balance_updated", 300),
)
_TAXONOMY_WEIGHT: Final = 1910
"""The rest of the catalogue, spread evenly over its names."""

_FIXED_TRACK: Final = frozenset(n for n, _ in (*_TRACK_PLAY, *_TRACK_OTHER))


@dataclass(frozen=True)
class Mix:
    """How many events of each (source, type) a log holds."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, predicate: Callable[[str], bool]) -> float:
        total = self.total
        return sum(v for k, v in self.counts.items() if predicate(k)) / total if total else 0.0


# Decimals as JSON numbers with their exact text (`Decimal("12.50")` -> `12.50`), as
# senders write money.
_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")


def _json(value: object) -> str:
    return _ENCODER.encode(value).decode()


class EventGenerator:
    """Requests in a seeded, realistic mix, decoded into envelopes as the API does."""

    def __init__(self, seed: int, players: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.players = max(players, 10)
        self.index = 0  # events so far: drives event time
        self.counter = 0  # unified unique_ids
        self.rounds = 0
        catalogue = default_catalogue()
        self.tables = catalogue.property_tables
        others = sorted(catalogue.names - _FIXED_TRACK)
        each = _TAXONOMY_WEIGHT / len(others)
        names = [*_TRACK_PLAY, *_TRACK_OTHER, *((n, each) for n in others)]
        self.track_names = [n for n, _ in names]
        self.track_weights = [float(w) for _, w in names]
        self.kinds = [k for k, _ in _REQUEST_KINDS]
        self.kind_weights = [w for _, w in _REQUEST_KINDS]
        # Game ids are shared by unified game items and all play, so games seen in
        # play and games in the catalogue overlap (as they do in production).
        self.open_rounds: dict[str, tuple[str, str, str]] = {}

    # -- ids and times --------------------------------------------------------------------

    def player(self) -> int:
        # Skewed: the cube of a uniform draw puts most activity on a few players.
        return 1 + int(self.players * self.rng.random() ** 3)

    def now(self) -> datetime:
        return T0 + timedelta(milliseconds=self.index * STEP_MS)

    def stamp(self, moment: datetime) -> str:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def game(self) -> str:
        return f"game_{1 + int(GAMES * self.rng.random() ** 2):03d}"

    def currency(self) -> str:
        return self.rng.choice(_CURRENCIES)

    def amount(self, low: int, high: int) -> Decimal:
        """Money in cents between `low` and `high`, exact, with two decimals."""
        return Decimal(self.rng.randint(low, high)).scaleb(-2)

    # -- requests -------------------------------------------------------------------------

    def requests(self) -> Iterator[list[Envelope]]:
        """Endless requests, each decoded into its envelopes (log order)."""
        while True:
            kind = self.rng.choices(self.kinds, self.kind_weights)[0]
            received = self.now() + timedelta(seconds=2)
            if kind == "track":
                body = self.track_body()
                batch = decode_track(
                    body, tenant=TENANT, environment=ENVIRONMENT, client_id=CLIENT_ID,
                    received_at=received, catalogue_mode="off",
                )  # fmt: skip
                if batch.errors:
                    raise ValueError(f"generated track events were rejected: {batch.errors[:3]}")
                yield batch.envelopes
            elif kind == "unified":
                body = self.unified_body()
                yield decode_unified(
                    body, tenant=TENANT, environment=ENVIRONMENT, client_id=CLIENT_ID,
                    received_at=received,
                )  # fmt: skip
            else:
                body = self.identify_body()
                self.index += 1
                yield [
                    decode_identify(
                        body, tenant=TENANT, environment=ENVIRONMENT, client_id=CLIENT_ID,
                        received_at=received,
                    )
                ]  # fmt: skip

    def track_body(self) -> bytes:
        events = []
        # A request comes from one device session: a few players behind one SDK.
        for _ in range(TRACK_BATCH):
            name = self.rng.choices(self.track_names, self.track_weights)[0]
            n = self.player()
            # Pre-login browsing is under the device's anonymous id.
            anonymous = name in ("page_viewed", "session_started") and self.rng.random() < 0.3
            user = f"anon_{n}" if anonymous else f"ply_{n}"
            event = {
                "user_id": user,
                "session_id": f"sess_{n}_{self.index // 5000}",
                "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "event_name": name,
                "timestamp": self.stamp(self.now()),
                "device_type": "mobile",
                "platform": self.rng.choice(("ios", "android", "web")),
                "properties": self.track_properties(name, user),
            }
            self.index += 1
            events.append(_json(event))
        return ('{"events":[' + ",".join(events) + "]}").encode()

    def track_properties(self, name: str, user: str) -> dict[str, object]:
        rng = self.rng
        currency = self.currency()
        money = self.amount(10, 50_000)
        if name in ("bet_placed", "bet_won", "bet_lost"):
            # A bet opens a round; its win or loss names the player's open round, so
            # the ledger can pair them by round_id.
            game = self.game()
            if name == "bet_placed" or user not in self.open_rounds:
                self.rounds += 1
                round_id = f"trnd_{self.seed}_{self.rounds}"
                self.open_rounds[user] = (round_id, game, currency)
            round_id, game, currency = self.open_rounds[user]
            if name == "bet_won":
                return {
                    "win_amount": self.amount(20, 200_000),
                    "multiplier": rng.choice((2, 3, 5, 10)),
                    "currency": currency,
                    "game_id": game,
                    "round_id": round_id,
                }
            return {
                "bet_amount": self.amount(10, 10_000),
                "currency": currency,
                "wallet_type": "bonus" if rng.random() < 0.1 else "cash",
                "game_id": game,
                "round_id": round_id,
            }
        if name == "slot_spin_completed":
            return {
                "game_id": self.game(),
                "provider_id": rng.choice(_PROVIDERS),
                "win_amount": self.amount(0, 5_000),
                "currency": currency,
            }
        if name == "login_success":
            return {
                "login_method": "email_password",
                "two_factor_used": rng.random() < 0.3,
                "device_id": f"dev_{rng.randint(10_000, 99_999)}",
            }
        if name in ("withdrawal_completed", "manual_adjustment_credit", "manual_adjustment_debit"):
            return {
                "amount": money,
                "currency": currency,
                "withdrawal_method": rng.choice(_METHODS),
                "transaction_id": f"txn_{rng.getrandbits(48):012x}",
            }
        table = self.tables.get(name)
        if table is None:
            return {"source": "lobby", "game_id": self.game()}
        return {prop: self.value(prop, kind, currency) for prop, kind in table.items()}

    def value(self, prop: str, kind: str, currency: str) -> object:
        if prop == "currency":
            return currency
        if kind == "number":
            return self.amount(100, 100_000)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if prop.endswith("game_id"):
            return self.game()
        return f"{prop}_{self.rng.randint(1, 20)}"

    def identify_body(self) -> bytes:
        rng = self.rng
        n = self.player()
        when = self.now()
        if rng.random() < 0.1:  # a late call: SDK queues flushed after reconnecting
            when -= timedelta(seconds=rng.randint(1, 3600))
        body: dict[str, object] = {
            "user_id": f"ply_{n}",
            "timestamp": self.stamp(when),
            "traits": {
                "email": f"ply_{n}@example.com",
                "vip_level": rng.choice(_VIP),
                "country": rng.choice(_COUNTRIES),
                "kyc_status": rng.choice(("pending", "verified")),
                "marketing_opt_in": rng.random() < 0.6,
                "lifetime_deposits": rng.randint(0, 50_000),
            },
        }
        if rng.random() < 0.5:
            body["anonymous_id"] = f"anon_{n}"
        if rng.random() < 0.05:
            body["unset_traits"] = ["marketing_opt_in"]
        return _json(body).encode()

    def unified_body(self) -> bytes:
        items: list[str] = []
        while len(items) < UNIFIED_BATCH:
            draw = self.rng.random()
            if draw < 0.035:
                items.append(self.unified_money("deposit"))
            elif draw < 0.05:
                items.append(self.unified_money("withdraw"))
            elif draw < 0.07:
                items.append(self.unified_item("login", {"player_id": self.player_id()}))
            elif draw < 0.08:
                items.append(self.unified_player())
            elif draw < 0.082:
                items.append(self.unified_game())
            else:
                items.extend(self.unified_round())
        return ('{"items":[' + ",".join(items[:UNIFIED_BATCH]) + "]}").encode()

    def player_id(self) -> str:
        return f"ply_{self.player()}"

    def unified_item(self, event: str, data: dict[str, object]) -> str:
        self.counter += 1
        self.index += 1
        head = {"unique_id": f"u{self.seed}-{self.counter}", "timestamp": self.stamp(self.now())}
        return _json({"event": event, "data": {**head, **data}})

    def unified_money(self, event: str) -> str:
        currency = self.currency()
        data: dict[str, object] = {"player_id": self.player_id()}
        # Exact decimals as JSON numbers: the raw text goes into the item.
        amount = self.amount(1_000, 50_000)
        data["amount"] = amount
        data["currency"] = currency
        data["method"] = self.rng.choice(_METHODS)
        if event == "deposit" and currency != "EUR" and self.rng.random() < 0.5:
            data["amount_eur"] = self.amount(1_000, 50_000)
        return self.unified_item(event, data)

    def unified_round(self) -> list[str]:
        self.rounds += 1
        player = self.player_id()
        game = self.game()
        currency = self.currency()
        round_id = f"rnd_{self.seed}_{self.rounds}"
        bonus = self.rng.random() < 0.08
        items = [self.round_item(player, game, round_id, currency, bet=True, bonus=bonus)]
        if self.rng.random() < 0.45:
            items.append(self.round_item(player, game, round_id, currency, bet=False, bonus=bonus))
        return items

    def round_item(
        self, player: str, game: str, round_id: str, currency: str, *, bet: bool, bonus: bool
    ) -> str:
        amount = self.amount(10, 2_000) if bet else self.amount(20, 20_000)
        data: dict[str, object] = {
            "player_id": player,
            "game_id": game,
            "round_id": round_id,
            "amount": amount,
            "currency": currency,
            "is_win": not bet,
            "is_bonus": bonus,
        }
        return self.unified_item("gameround", data)

    def unified_player(self) -> str:
        rng = self.rng
        n = self.player()
        data: dict[str, object] = {
            "player_id": f"ply_{n}",
            "username": f"player{n}",
            "registration_date": self.stamp(T0 - timedelta(days=rng.randint(1, 900))),
            "country": rng.choice(_COUNTRIES),
            "currency": self.currency(),
            "gender": rng.choice(("M", "F")),
            "affiliate": f"aff_{rng.randint(1, 40)}",
            "operator": "casino-a",
            "tags": rng.sample(["vip", "high_roller", "sports", "slots", "live"], 2),
            "consent_email": rng.random() < 0.7,
            "is_blocked": rng.random() < 0.01,
        }
        return self.unified_item("player", data)

    def unified_game(self) -> str:
        rng = self.rng
        game = self.game()
        data: dict[str, object] = {
            "game_id": game,
            "name": game.replace("_", " ").title(),
            "provider": rng.choice(_PROVIDERS),
            "categories": ["slots"] if rng.random() < 0.8 else ["live", "table"],
            "features": rng.sample(["free_spins", "multiplier", "buy_bonus", "megaways"], 2),
            "themes": [rng.choice(("egypt", "fruit", "myth", "west"))],
            "device": "all",
            "has_freespins": rng.choice(("yes", "no", "unknown")),
        }
        return self.unified_item("game", data)


def generate(path: Path, size: int, seed: int, *, report: Callable[[str], None]) -> Mix:
    """Write a log of exactly `size` mixed events to `path` (a new file)."""
    url = f"sqlite:///{path}?synchronous=OFF"  # a throwaway fill, as bench/append's prefill
    log = open_log(url)
    generator = EventGenerator(seed, players=max(1_000, size // 50))
    counts: dict[str, int] = {}
    pending: list[Envelope] = []
    written = 0
    began = last = time.perf_counter()
    try:
        requests = generator.requests()
        while written < size:
            while len(pending) < APPEND_CALL:
                pending.extend(next(requests))
            call = pending[: min(APPEND_CALL, size - written)]
            pending = pending[len(call) :]
            results = log.append_sync(call)
            stored = sum(r.status == "stored" for r in results)
            if stored != len(call):
                raise RuntimeError(f"{len(call) - stored} generated events were not new")
            for envelope in call:
                key = f"{envelope.source}:{envelope.type}"
                counts[key] = counts.get(key, 0) + 1
            written += len(call)
            now = time.perf_counter()
            if now - last > 20:
                rate = written / (now - began)
                report(f"generating: {written:,} of {size:,} events ({rate:,.0f}/s)")
                last = now
    finally:
        log.close()
    return Mix(counts)


def cached_log(
    cache: Path, size: int, seed: int, *, report: Callable[[str], None]
) -> tuple[Path, Mix]:
    """The log of `size` events from `seed`, generated once and kept in `cache`.

    A log counts as cached only with its mix file beside it (written last), so an
    interrupted generation is never reused.
    """
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"mixed-v{CACHE_VERSION}-seed{seed}-{size}"
    path = cache / f"{stem}.db"
    meta = cache / f"{stem}.mix.json"
    if path.exists() and meta.exists():
        return path, Mix(json.loads(meta.read_text())["counts"])
    for stale in (path, meta, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    began = time.perf_counter()
    mix = generate(path, size, seed, report=report)
    report(f"generated {size:,} events in {time.perf_counter() - began:.0f} s: {path}")
    meta.write_text(json.dumps({"seed": seed, "size": size, "counts": mix.counts}, indent=1))
    return path, mix


def generate_players(path: Path, players: int, seed: int) -> None:
    """A log of one identify call for each of `players` players (`ply_1` ... `ply_<n>`),
    with traits and an anonymous id, decoded as the API does."""
    rng = random.Random(seed)
    log = open_log(f"sqlite:///{path}?synchronous=OFF")
    try:
        for first in range(1, players + 1, APPEND_CALL):
            calls = []
            for n in range(first, min(first + APPEND_CALL, players + 1)):
                when = T0 + timedelta(milliseconds=n)
                body = {
                    "user_id": f"ply_{n}",
                    "anonymous_id": f"anon_{n}",
                    "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "traits": {
                        "email": f"ply_{n}@example.com",
                        "vip_level": rng.choice(_VIP),
                        "country": rng.choice(_COUNTRIES),
                        "kyc_status": rng.choice(("pending", "verified")),
                        "marketing_opt_in": rng.random() < 0.6,
                    },
                }
                calls.append(
                    decode_identify(
                        _json(body).encode(), tenant=TENANT, environment=ENVIRONMENT,
                        client_id=CLIENT_ID, received_at=when + timedelta(seconds=1),
                    )
                )  # fmt: skip
            log.append_sync(calls)
    finally:
        log.close()


def cached_players_log(
    cache: Path, players: int, seed: int, *, report: Callable[[str], None]
) -> Path:
    """The log of `generate_players`, made once and kept in `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"players-v{CACHE_VERSION}-seed{seed}-{players}.db"
    done = path.with_name(path.name + ".done")
    if path.exists() and done.exists():
        return path
    for stale in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    began = time.perf_counter()
    generate_players(path, players, seed)
    report(f"generated {players:,} identify calls in {time.perf_counter() - began:.0f} s: {path}")
    done.touch()
    return path
