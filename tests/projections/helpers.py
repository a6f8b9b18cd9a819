"""Builders for the projections' tests: realistic envelopes, fresh builds, table dumps."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventstore import Envelope, EventLog, RecordedEvent
from projections import PlayersProjection, Projection, ProjectionRunner, Tables, open_views
from projections.standard import standard_projections

T0 = datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
# Decimals as JSON numbers with their exact text (`Decimal("0.10")` → `0.10`), as senders do.
_JSON = msgspec.json.Encoder(decimal_format="number")
RECEIVED = datetime(2026, 5, 18, 21, 0, tzinfo=UTC)
TENANT = "casino-a"
ENV = "live"
PLAYER_TABLES = PlayersProjection.tables
#: Every table of every projection playerlog runs (players, games, ledger).
STANDARD_TABLES = tuple(base for p in standard_projections() for base in p.tables)
BOTH_DATABASES = pytest.mark.parametrize("views", ["sqlite", "postgres"], indirect=True)
"""Run the test with the read models in SQLite and in PostgreSQL (the `views` fixture)."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _envelope(
    *,
    source: str,
    type_: str,
    event_id: str,
    subject: str,
    when: datetime,
    payload: bytes,
    tenant: str,
    environment: str,
    received: datetime | None,
) -> Envelope:
    return Envelope(
        tenant=tenant,
        environment=environment,
        source=source,
        type=type_,
        event_id=event_id,
        subject=subject,
        occurred_at=when,
        received_at=received or RECEIVED,
        client_id="sdk-test",
        payload=payload,
    )


def identify(
    user_id: str,
    *,
    when: datetime,
    traits: dict[str, Any] | None = None,
    unset: list[str] | None = None,
    anonymous_id: str | None = None,
    tenant: str = TENANT,
    environment: str = ENV,
    received: datetime | None = None,
) -> Envelope:
    """What ingest makes of `POST /v1/events/identify` (the whole body as payload)."""
    body: dict[str, Any] = {"user_id": user_id, "timestamp": iso(when)}
    if anonymous_id is not None:
        body["anonymous_id"] = anonymous_id
    if traits is not None:
        body["traits"] = traits
    if unset is not None:
        body["unset_traits"] = unset
    payload = json.dumps(body).encode()
    return _envelope(
        source="identify",
        type_="identify",
        event_id="identify-" + hashlib.sha256(payload).hexdigest()[:32],
        subject=user_id,
        when=when,
        payload=payload,
        tenant=tenant,
        environment=environment,
        received=received,
    )


def default_properties(event_name: str) -> dict[str, Any]:
    """Properties shaped like the spec's sample of `event_name` (money events carry
    their own amount field: `win_amount` for `bet_won`, `amount` for deposits, …)."""
    if event_name == "bet_won":
        return {"win_amount": 18, "multiplier": 9, "currency": "EUR", "game_id": "gates_of_olympus"}
    if event_name in ("bet_placed", "bet_lost"):
        return {
            "bet_amount": 2,
            "currency": "EUR",
            "wallet_type": "cash",
            "game_id": "gates_of_olympus",
        }
    return {"amount": 100, "currency": "EUR"}


def track(
    user_id: str,
    event_name: str,
    *,
    when: datetime,
    event_id: str,
    properties: dict[str, Any] | None = None,
    tenant: str = TENANT,
    environment: str = ENV,
    received: datetime | None = None,
) -> Envelope:
    """One event of `POST /v1/events/track`, as ingest stores it."""
    body = {
        "user_id": user_id,
        "session_id": "sess_abc12398",
        "event_id": event_id,
        "event_name": event_name,
        "timestamp": iso(when),
        "device_type": "mobile",
        "platform": "android",
        "brand_id": "brand_01",
        "properties": properties or default_properties(event_name),
    }
    return _envelope(
        source="track",
        type_=event_name,
        event_id=event_id,
        subject=user_id,
        when=when,
        payload=_JSON.encode(body),
        tenant=tenant,
        environment=environment,
        received=received,
    )


def unified(
    event: str,
    data: dict[str, Any],
    *,
    tenant: str = TENANT,
    environment: str = ENV,
    received: datetime | None = None,
) -> Envelope:
    """One item of `POST /api/v1/events`, as ingest stores it."""
    return _envelope(
        source="unified",
        type_=event,
        event_id=data["unique_id"],
        subject=data["game_id"] if event == "game" else data["player_id"],
        when=datetime.fromisoformat(data["timestamp"]),
        payload=_JSON.encode({"event": event, "data": data}),
        tenant=tenant,
        environment=environment,
        received=received,
    )


def player_item(player_id: str, *, when: datetime, unique_id: str, **fields: Any) -> Envelope:
    return unified(
        "player", {"unique_id": unique_id, "timestamp": iso(when), "player_id": player_id, **fields}
    )


def login_item(player_id: str, *, when: datetime, unique_id: str) -> Envelope:
    return unified(
        "login", {"unique_id": unique_id, "timestamp": iso(when), "player_id": player_id}
    )


def gameround_item(
    player_id: str,
    *,
    when: datetime,
    unique_id: str,
    amount: float | Decimal = 0.5,
    is_win: bool = False,
    currency: str = "EUR",
    is_bonus: bool = False,
    round_id: str | None = None,
    game_id: str = "GD8",
    tenant: str = TENANT,
    environment: str = ENV,
) -> Envelope:
    return unified(
        "gameround",
        {
            "unique_id": unique_id,
            "timestamp": iso(when),
            "player_id": player_id,
            "game_id": game_id,
            "round_id": round_id or f"round-{unique_id}",
            "amount": amount,
            "currency": currency,
            "is_win": is_win,
            "is_bonus": is_bonus,
        },
        tenant=tenant,
        environment=environment,
    )


def deposit_item(
    player_id: str,
    *,
    when: datetime,
    unique_id: str,
    amount: float | Decimal = 100,
    currency: str = "EUR",
    amount_eur: float | Decimal | None = None,
    tenant: str = TENANT,
    environment: str = ENV,
) -> Envelope:
    data: dict[str, Any] = {
        "unique_id": unique_id,
        "timestamp": iso(when),
        "player_id": player_id,
        "amount": amount,
        "currency": currency,
        "method": "Credit Card",
    }
    if amount_eur is not None:
        data["amount_eur"] = amount_eur
    return unified("deposit", data, tenant=tenant, environment=environment)


def withdraw_item(
    player_id: str,
    *,
    when: datetime,
    unique_id: str,
    amount: float | Decimal = 50,
    currency: str = "EUR",
) -> Envelope:
    return unified(
        "withdraw",
        {
            "unique_id": unique_id,
            "timestamp": iso(when),
            "player_id": player_id,
            "amount": amount,
            "currency": currency,
            "method": "Bank Transfer",
        },
    )


def money_track(
    user_id: str,
    event_name: str,
    amount: float | Decimal,
    *,
    when: datetime,
    event_id: str,
    currency: str = "EUR",
    **properties: Any,
) -> Envelope:
    """A track money event with its amount under the field the spec names for it."""
    field = {"bet_placed": "bet_amount", "bet_won": "win_amount"}.get(event_name, "amount")
    return track(
        user_id,
        event_name,
        when=when,
        event_id=event_id,
        properties={field: amount, "currency": currency, **properties},
    )


def game_item(game_id: str, *, when: datetime, unique_id: str) -> Envelope:
    return unified(
        "game",
        {"unique_id": unique_id, "timestamp": iso(when), "game_id": game_id, "name": "Gates"},
    )


def recorded(envelopes: Sequence[Envelope], start: int = 1) -> list[RecordedEvent]:
    """The envelopes as the log would hand them back, at positions start, start + 1, …"""
    return [
        RecordedEvent(start + i, *(getattr(e, f) for f in Envelope.__struct_fields__))
        for i, e in enumerate(envelopes)
    ]


def mixed_events(
    count: int, *, players: int = 40, seed: int = 0, prefix: str = "e"
) -> list[Envelope]:
    """A realistic mix, mostly play: bets and wins, logins, identify calls (some linking
    anonymous ids), unified player updates, rounds, deposits, a game now and then."""
    import random  # noqa: PLC0415

    rng = random.Random(seed)
    out: list[Envelope] = []
    for i in range(count):
        user = f"ply_{rng.randrange(players)}"
        when = at(rng.randrange(0, 86_400))
        eid = f"{prefix}-{i}"
        roll = rng.random()
        if roll < 0.45:
            out.append(
                track(
                    user, rng.choice(["bet_placed", "bet_won", "bet_lost"]), when=when, event_id=eid
                )
            )
        elif roll < 0.55:
            anon = f"anon_{rng.randrange(players * 2)}"
            out.append(
                track(anon, "page_viewed", when=when, event_id=eid, properties={"page": "/lobby"})
            )
        elif roll < 0.62:
            out.append(
                track(
                    user,
                    "login_success",
                    when=when,
                    event_id=eid,
                    properties={"login_method": "email_password"},
                )
            )
        elif roll < 0.72:
            traits: dict[str, Any] = {
                rng.choice(["vip_level", "kyc_status", "country", "language"]): rng.choice(
                    ["gold", "approved", "MT", "en", None, 3]
                )
                for _ in range(rng.randrange(1, 4))
            }
            unset = [rng.choice(["vip_level", "anonymous_segment"])] if rng.random() < 0.2 else None
            anon_id = f"anon_{rng.randrange(players * 2)}" if rng.random() < 0.3 else None
            out.append(
                identify(
                    user,
                    when=when,
                    traits=traits,
                    unset=unset,
                    anonymous_id=anon_id,
                    received=RECEIVED + timedelta(seconds=i),
                )
            )
        elif roll < 0.8:
            out.append(
                player_item(
                    user,
                    when=when,
                    unique_id=eid,
                    country=rng.choice(["MT", "DE", None]),
                    is_blocked=rng.random() < 0.1,
                    tags=["vip"] if rng.random() < 0.5 else None,
                )
            )
        elif roll < 0.9:
            out.append(gameround_item(user, when=when, unique_id=eid, is_win=rng.random() < 0.4))
        elif roll < 0.95:
            out.append(login_item(user, when=when, unique_id=eid))
        elif roll < 0.98:
            out.append(
                unified(
                    "deposit",
                    {
                        "unique_id": eid,
                        "timestamp": iso(when),
                        "player_id": user,
                        "amount": 100,
                        "currency": "EUR",
                        "method": "Credit Card",
                    },
                )
            )
        else:
            out.append(game_item(f"game_{rng.randrange(5)}", when=when, unique_id=eid))
    return out


def money_mix_events(
    count: int, *, players: int = 40, seed: int = 0, prefix: str = "m"
) -> list[Envelope]:
    """`mixed_events` with every other kind of money in between: withdrawals, cashback,
    refunds, adjustments, bonus-wallet bets, other currencies (some with `amount_eur`),
    catalogue items of the games played, and now and then a track money event whose
    money cannot be read (the ledger lists it), so every table of every model fills."""
    import random  # noqa: PLC0415

    rng = random.Random(seed)
    base = mixed_events(count, players=players, seed=seed, prefix=prefix)
    out: list[Envelope] = []
    for i, event in enumerate(base):
        out.append(event)
        if rng.random() >= 0.35:
            continue
        user = f"ply_{rng.randrange(players)}"
        when = at(rng.randrange(0, 86_400))
        eid = f"{prefix}-x{i}"
        currency = rng.choice(["EUR", "USD", "BTC"])
        amount = Decimal(rng.randrange(1, 50_000)) / 100
        roll = rng.random()
        if roll < 0.25:
            out.append(
                money_track(
                    user,
                    "bet_placed",
                    amount,
                    when=when,
                    event_id=eid,
                    currency=currency,
                    game_id=f"game_{rng.randrange(5)}",
                    wallet_type=rng.choice(["cash", "bonus"]),
                    round_id=f"r{i}",
                )
            )
        elif roll < 0.45:
            name = rng.choice(
                [
                    "withdrawal_completed",
                    "cashback_credited",
                    "refund_processed",
                    "manual_adjustment_credit",
                    "manual_adjustment_debit",
                    "deposit_success",
                ]
            )
            extra = {"amount_eur": amount * 2} if currency == "BTC" else {}
            out.append(
                money_track(user, name, amount, when=when, event_id=eid, currency=currency, **extra)
            )
        elif roll < 0.65:
            out.append(withdraw_item(user, when=when, unique_id=eid, amount=amount))
        elif roll < 0.85:
            out.append(
                gameround_item(
                    user,
                    when=when,
                    unique_id=eid,
                    amount=amount,
                    currency=currency,
                    is_win=rng.random() < 0.4,
                    is_bonus=rng.random() < 0.2,
                    game_id=f"game_{rng.randrange(5)}",
                )
            )
        elif roll < 0.95:
            out.append(game_item(f"game_{rng.randrange(5)}", when=when, unique_id=eid))
        else:  # amount missing: no movement anywhere, one row in ledger_unreadable
            out.append(
                track(user, "bet_won", when=when, event_id=eid, properties={"currency": "EUR"})
            )
    return out


def table_rows(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table or view, in a stable order."""
    columns = len(conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description)
    order = ", ".join(str(i) for i in range(1, columns + 1))
    return conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """All the players model's tables, through the views (the active build)."""
    return {base: table_rows(conn, base) for base in PLAYER_TABLES}


def fresh_build(
    log: EventLog, views: Path, *, page_size: int = 1000
) -> dict[str, list[tuple[Any, ...]]]:
    """Build the players model from zero into a new file; returns its tables."""
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=page_size) as runner:
        runner.catch_up()
        return dump(runner.conn)


def dump_all(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of every standard projection, through the views (the active builds)."""
    return {base: table_rows(conn, base) for base in STANDARD_TABLES}


def fresh_standard_build(
    log: EventLog, views: Path, *, page_size: int = 1000
) -> dict[str, list[tuple[Any, ...]]]:
    """Build all the standard projections from zero into a new file; returns their tables."""
    with ProjectionRunner(log, standard_projections(), views=views, page_size=page_size) as runner:
        runner.catch_up()
        return dump_all(runner.conn)


def views_conn(path: Path) -> sqlite3.Connection:
    return open_views(path)


class ApplyOnly:
    """A projection (players by default) offered through `apply` alone, without its
    write-behind buffer: the runner then applies every page (the path any
    projection without a buffer takes). Subclasses override `apply` to fail or
    crash on purpose."""

    def __init__(self, inner: Projection | None = None) -> None:
        self.inner = inner if inner is not None else PlayersProjection()
        self.name = self.inner.name
        self.version = self.inner.version
        self.tables = self.inner.tables

    def create(self, db: Any, tables: Tables) -> None:
        self.inner.create(db, tables)

    def apply(
        self, page: Sequence[RecordedEvent], conn: sqlite3.Connection, tables: Tables
    ) -> None:
        self.inner.apply(page, conn, tables)
