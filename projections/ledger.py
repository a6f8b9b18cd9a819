"""The ledger read model: one row per money movement, exact, with its EUR figure.

Rows come from `read_movements` (the movement table in `projections.movements`)
and `Rates.to_eur` (projections.rates); nothing else decides what money moved.
A row is written once, when its event is applied, and never changes: the
ledger is a journal, not a balance.

Columns of `ledger`: tenant, environment, position and line (the event's log
position and the movement's index within the event, always 0 today: the key),
event_id, user_id (the actor: the event's subject, a player or an anonymous
id), kind, wallet, amount (exact decimal text, as sent), currency, amount_eur
(exact decimal text, or NULL), unconverted (1 when there is no EUR figure),
game_id, round_id, occurred_at, received_at (fixed-width UTC text).

Anonymous ids: the row keeps the actor as the event named it. So that the
ledger answers "the movements of player P" on its own (in one build, consistent
with its own checkpoint, and rebuilt with it), it keeps its own copy of the
anonymous links in `ledger_links`, merged by the players model's rule: an
anonymous id belongs to the player of its latest `identify` link by event time
(ties by log position), links are not followed transitively. `get_ledger(P)`
lists P's own rows (unless P itself is linked to another player) and the rows
of the anonymous ids linked to P at the ledger's checkpoint, whether the link
arrived before or after the movements.

Unreadable money: a track money event whose money fields cannot be read
(`read_movements` gives `UnreadableMoney`: its properties are free-form) is no
movement and has no `ledger` row, but it is never dropped silently: it gets one
row in `ledger_unreadable` (tenant, environment, position, event_id, user_id,
type, reason naming the field), listed by `list_unreadable`. A unified item's
bad money raises `CannotApply` and stops the projection (validated at ingest,
so a bug).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from eventstore import RecordedEvent
from projections.database import ViewsConnection, read_transaction
from projections.links import create_links_table
from projections.movements import MONEY_EVENTS, MOVEMENT_KINDS, UnreadableMoney, read_movements
from projections.protocol import CannotApply, Tables
from projections.rates import NO_RATES, Rates, eur_text
from projections.registry import active_position
from projections.timefmt import parse_time, time_text

__all__ = [
    "MAX_LEDGER_LIMIT",
    "InvalidLedgerCursorError",
    "LedgerEntry",
    "LedgerPage",
    "LedgerProjection",
    "UnreadableEvent",
    "UnreadablePage",
    "get_ledger",
    "list_unreadable",
]

MAX_LEDGER_LIMIT: Final = 1000


class _Identify(msgspec.Struct, gc=False):
    anonymous_id: str | None = None


_IDENTIFY: Final = msgspec.json.Decoder(_Identify)
_encode = msgspec.json.encode


@dataclass(frozen=True)
class _Statements:
    insert_row: str
    upsert_link: str
    insert_unreadable: str


# Templates: `{ledger}` and `{ledger_links}` are replaced by one build's physical
# table names (from the registry, never from input); values are always parameters.
_INSERT_ROW: Final = (
    "INSERT INTO {ledger} (tenant, environment, position, line, event_id, user_id, kind, "
    "wallet, amount, currency, amount_eur, unconverted, game_id, round_id, occurred_at, "
    "received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# The latest link by (event time, position) wins, whatever order links arrive in.
_UPSERT_LINK: Final = (
    "INSERT INTO {ledger_links} AS cur "
    "(tenant, environment, anonymous_id, user_id, time, position) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (tenant, environment, anonymous_id) DO UPDATE SET "
    "user_id = excluded.user_id, time = excluded.time, position = excluded.position "
    "WHERE (excluded.time, excluded.position) > (cur.time, cur.position)"
)
_INSERT_UNREADABLE: Final = (
    "INSERT INTO {ledger_unreadable} (tenant, environment, position, event_id, user_id, type, "
    "reason) VALUES (?,?,?,?,?,?,?)"
)


def _statements(tables: Tables) -> _Statements:
    names = {base: '"' + tables[base].replace('"', '""') + '"' for base in LedgerProjection.tables}
    return _Statements(
        insert_row=_INSERT_ROW.format(**names),
        upsert_link=_UPSERT_LINK.format(**names),
        insert_unreadable=_INSERT_UNREADABLE.format(**names),
    )


def _link(event: RecordedEvent) -> tuple[Any, ...] | None:
    """The `ledger_links` row of an `identify` event, if it links an anonymous id."""
    try:
        anonymous = _IDENTIFY.decode(event.payload).anonymous_id
    except msgspec.DecodeError as error:
        raise CannotApply(f"identify payload: {error}") from None
    if not anonymous or anonymous == event.subject:
        return None
    return (
        event.tenant,
        event.environment,
        anonymous,
        event.subject,
        time_text(event.occurred_at),
        event.position,
    )


class LedgerProjection:
    """The `ledger` projection (see the module's docstring).

    `rates` converts to EUR (default: no rates file, so only `amount_eur` and EUR
    amounts convert). A different rates file is a different build: rebuild the
    ledger after changing it (docs/money.md).
    """

    name = "ledger"
    catch_up_cost = 1.3  # relative fold cost an event (13 us; `projections.helpers`)
    version = 2  # 2: unreadable track money listed in ledger_unreadable, not stopping
    tables = ("ledger", "ledger_links", "ledger_unreadable")

    def __init__(self, rates: Rates = NO_RATES) -> None:
        self.rates = rates
        self._cache: dict[str, _Statements] = {}

    def create(self, db: Any, tables: Tables) -> None:
        scope = {"tenant": str, "environment": str}
        db.table(tables["ledger"]).create(
            {
                **scope,
                "position": int,
                "line": int,
                "event_id": str,
                "user_id": str,
                "kind": str,
                "wallet": str,
                "amount": str,
                "currency": str,
                "amount_eur": str,
                "unconverted": int,
                "game_id": str,
                "round_id": str,
                "occurred_at": str,
                "received_at": str,
            },
            pk=("position", "line"),
            not_null={
                "tenant",
                "environment",
                "position",
                "line",
                "event_id",
                "user_id",
                "kind",
                "wallet",
                "amount",
                "currency",
                "unconverted",
                "occurred_at",
                "received_at",
            },
        )
        create_links_table(db, tables["ledger_links"])
        db.table(tables["ledger_unreadable"]).create(
            {
                **scope,
                "position": int,
                "event_id": str,
                "user_id": str,
                "type": str,
                "reason": str,
            },
            pk="position",
            not_null={"tenant", "environment", "position", "event_id", "user_id", "type", "reason"},
        )

    def create_read_indexes(self, db: Any, tables: Tables) -> None:
        """A player's ledger by time, and the unreadable events by scope: read only.
        A build catching up appends rows in position order (the primary key), while
        the by-user index takes each row at a random place, dearer as the index
        outgrows the page cache."""
        db.table(tables["ledger"]).create_index(
            ["tenant", "environment", "user_id", "occurred_at", "position", "line"],
            index_name=f"{tables['ledger']}_by_user",
            if_not_exists=True,
        )
        db.table(tables["ledger_unreadable"]).create_index(
            ["tenant", "environment", "position"],
            index_name=f"{tables['ledger_unreadable']}_by_scope",
            if_not_exists=True,
        )

    def apply(
        self, page: Sequence[RecordedEvent], conn: ViewsConnection, tables: Tables
    ) -> None:
        buffer = self.buffer(tables)
        buffer.fold(page)
        buffer.flush(conn)

    def buffer(self, tables: Tables) -> _Buffer:
        """Write-behind (`protocol.Buffer`): the ledger only appends rows (and
        upserts links), so the pages' rows are inserted together at the flush."""
        s = self._cache.get(tables["ledger"])
        if s is None:
            s = self._cache[tables["ledger"]] = _statements(tables)
        return _Buffer(s, self.rates)


class _Buffer:
    """The rows of the pages folded so far, inserted at the flush."""

    __slots__ = ("_statements", "_to_eur", "links", "rows", "times", "unreadable")

    def __init__(self, statements: _Statements, rates: Rates) -> None:
        self._statements = statements
        self._to_eur = rates.to_eur
        # datetime → text, one page at a time (`fold`): a batch's events share
        # `received_at`; kept for the whole buffer it would grow by one key an event
        self.times: dict[datetime, str] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.links: list[tuple[Any, ...]] = []
        self.unreadable: list[tuple[Any, ...]] = []

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.links) + len(self.unreadable)

    def fold(self, page: Sequence[RecordedEvent]) -> None:
        to_eur = self._to_eur
        times, rows, links, unreadable = self.times, self.rows, self.links, self.unreadable
        times.clear()
        for event in page:
            if (event.source, event.type) in MONEY_EVENTS:
                moved = read_movements(event)
                if isinstance(moved, UnreadableMoney):
                    unreadable.append(
                        (
                            event.tenant,
                            event.environment,
                            event.position,
                            event.event_id,
                            event.subject,
                            event.type,
                            moved.reason,
                        )
                    )
                    continue
                received = times.get(event.received_at)
                if received is None:
                    received = times[event.received_at] = time_text(event.received_at)
                for line, movement in enumerate(moved):
                    when = times.get(movement.occurred_at)
                    if when is None:
                        when = times[movement.occurred_at] = time_text(movement.occurred_at)
                    eur = to_eur(movement)
                    rows.append(
                        (
                            event.tenant,
                            event.environment,
                            event.position,
                            line,
                            event.event_id,
                            movement.user_id,
                            movement.kind,
                            movement.wallet,
                            str(movement.amount),
                            movement.currency,
                            eur_text(eur),
                            int(eur is None),
                            movement.game_id,
                            movement.round_id,
                            when,
                            received,
                        )
                    )
            elif event.source == "identify":
                link = _link(event)
                if link is not None:
                    links.append(link)

    def flush(self, conn: ViewsConnection) -> None:
        s = self._statements
        if self.rows:
            conn.executemany(s.insert_row, self.rows)
        if self.links:
            conn.executemany(s.upsert_link, self.links)
        if self.unreadable:
            conn.executemany(s.insert_unreadable, self.unreadable)


# -- queries ------------------------------------------------------------------------------------


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One movement. Decimals encode to JSON as strings holding the exact value."""

    position: int
    event_id: str
    user_id: str
    """The actor: the player, or an anonymous id linked to the player."""
    kind: str
    wallet: str
    amount: Decimal
    currency: str
    amount_eur: Decimal | None
    unconverted: bool
    """No EUR figure: no `amount_eur`, not EUR, and no rate for the event's date."""
    game_id: str | None
    round_id: str | None
    occurred_at: datetime
    received_at: datetime


class LedgerPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[LedgerEntry]
    next_cursor: str | None
    """Pass it back as `cursor` (with the same filters) for the next page; None at the end."""
    has_more: bool
    position: int
    """The ledger's checkpoint: this page reflects the log up to here (0 before any build)."""


class InvalidLedgerCursorError(ValueError):
    """A cursor that `get_ledger` did not make."""


_COLUMNS: Final = (
    "position, event_id, user_id, kind, wallet, amount, currency, amount_eur, unconverted, "
    "game_id, round_id, occurred_at, received_at, line"
)


def _entry(row: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(
        position=row[0],
        event_id=row[1],
        user_id=row[2],
        kind=row[3],
        wallet=row[4],
        amount=Decimal(row[5]),
        currency=row[6],
        amount_eur=None if row[7] is None else Decimal(row[7]),
        unconverted=bool(row[8]),
        game_id=row[9],
        round_id=row[10],
        occurred_at=parse_time(row[11]),
        received_at=parse_time(row[12]),
    )


def _encode_cursor(occurred_at: str, position: int, line: int) -> str:
    raw = _encode([occurred_at, position, line])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=tuple[str, int, int])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidLedgerCursorError(f"invalid cursor {cursor!r}") from None


def _actors(conn: ViewsConnection, tenant: str, environment: str, user_id: str) -> list[str]:
    """The ids whose movements are `user_id`'s: its own (unless linked to another
    player) and those of the anonymous ids linked to it."""
    scope = "tenant = ? AND environment = ?"
    actors = [
        row[0]
        for row in conn.execute(
            f"SELECT anonymous_id FROM ledger_links WHERE {scope} AND user_id = ?",  # noqa: S608
            (tenant, environment, user_id),
        )
    ]
    owner = conn.execute(
        f"SELECT user_id FROM ledger_links WHERE {scope} AND anonymous_id = ?",  # noqa: S608
        (tenant, environment, user_id),
    ).fetchone()
    if owner is None:
        actors.append(user_id)
    return actors


def get_ledger(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    user_id: str,
    *,
    kind: str | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> LedgerPage:
    """The movements of player `user_id` (and of its linked anonymous ids), oldest
    first by event time (ties by log position), in pages of `limit` (1 to 1000).

    `kind` filters by movement kind; `from_` (inclusive) and `to` (exclusive)
    by event time. Pages are keyed by (event time, position), so they neither
    repeat nor skip rows while paging. An id without movements (or unknown)
    gives an empty page: whether the player exists is `get_player`'s answer.
    """
    if not 1 <= limit <= MAX_LEDGER_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LEDGER_LIMIT}")
    if kind is not None and kind not in MOVEMENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MOVEMENT_KINDS)}, not {kind!r}")
    after = None if cursor is None else _decode_cursor(cursor)
    with read_transaction(conn):
        checkpoint = active_position(conn, "ledger")
        if checkpoint is None:
            return LedgerPage(items=[], next_cursor=None, has_more=False, position=0)
        clauses = ["tenant = ?", "environment = ?", "user_id IN (SELECT value FROM json_each(?))"]
        actors = _actors(conn, tenant, environment, user_id)
        params: list[Any] = [tenant, environment, _encode(actors).decode()]
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if from_ is not None:
            clauses.append("occurred_at >= ?")
            params.append(time_text(from_))
        if to is not None:
            clauses.append("occurred_at < ?")
            params.append(time_text(to))
        if after is not None:
            clauses.append("(occurred_at, position, line) > (?, ?, ?)")
            params.extend(after)
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM ledger WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY occurred_at, position, line LIMIT ?",
            (*params, limit),
        ).fetchall()
    has_more = len(rows) == limit
    next_cursor = _encode_cursor(rows[-1][11], rows[-1][0], rows[-1][13]) if has_more else None
    return LedgerPage(
        items=[_entry(row) for row in rows],
        next_cursor=next_cursor,
        has_more=has_more,
        position=checkpoint,
    )


class UnreadableEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A track money event whose money fields could not be read: counted nowhere."""

    position: int
    event_id: str
    user_id: str
    """The event's subject: a player or an anonymous id."""
    type: str
    """The track event's name (`withdrawal_completed`, `bet_placed`, …)."""
    reason: str
    """What is wrong, naming the event and the field."""


class UnreadablePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[UnreadableEvent]
    next_cursor: str | None
    """Pass it back as `cursor` for the next page; None at the end."""
    has_more: bool
    position: int
    """The ledger's checkpoint: this page reflects the log up to here (0 before any build)."""


def _encode_position_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(_encode([position])).decode().rstrip("=")


def _decode_position_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        (position,) = msgspec.json.decode(raw, type=tuple[int])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidLedgerCursorError(f"invalid cursor {cursor!r}") from None
    return position


def list_unreadable(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> UnreadablePage:
    """The track money events of a tenant and environment whose money could not be
    read (and so count nowhere), in log order, in pages of `limit` (1 to 1000).

    Pages are keyed by log position: events recorded while paging come after
    the last page, never between pages.
    """
    if not 1 <= limit <= MAX_LEDGER_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LEDGER_LIMIT}")
    after = 0 if cursor is None else _decode_position_cursor(cursor)
    with read_transaction(conn):
        checkpoint = active_position(conn, "ledger")
        if checkpoint is None:
            return UnreadablePage(items=[], next_cursor=None, has_more=False, position=0)
        rows = conn.execute(
            "SELECT position, event_id, user_id, type, reason FROM ledger_unreadable "
            "WHERE tenant = ? AND environment = ? AND position > ? ORDER BY position LIMIT ?",
            (tenant, environment, after, limit),
        ).fetchall()
    has_more = len(rows) == limit
    return UnreadablePage(
        items=[
            UnreadableEvent(
                position=row[0], event_id=row[1], user_id=row[2], type=row[3], reason=row[4]
            )
            for row in rows
        ],
        next_cursor=_encode_position_cursor(rows[-1][0]) if has_more else None,
        has_more=has_more,
        position=checkpoint,
    )
