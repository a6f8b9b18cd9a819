"""The players read model: one row per player, per tenant and environment.

Merge rules (every one independent of the order events arrive in, so a late or
out-of-order call gives the profile an in-order one would):

* **identify traits**, per trait: the value with the latest event time wins
  (`timestamp`, i.e. the envelope's `occurred_at`); equal times go to the
  higher log position; within one call `unset_traits` beats `traits` ("applied
  after traits are merged"). An unset is remembered as a tombstone with its
  time, so an older value arriving later does not bring the trait back. A
  trait set to `null` is kept as `null`.
* **unified `player` fields** (username, registration_date, country, currency,
  gender, affiliate, operator, tags, consent_email, is_blocked), per field, by
  the same rule. A field absent from the item leaves the stored value alone; a
  field sent as `null` sets it to null (JSON merge-patch). `registration_date`
  is stored in UTC.
* **anonymous ids**: identify's `anonymous_id` links that id to the player; an
  anonymous id belongs to one player, the latest link by event time (ties by
  position). Links are not followed transitively.
* **activity** is every `track` event and the unified `gameround`, `deposit`,
  `withdraw` and `login` items (profile updates are not activity). It is
  counted per actor id (the event's subject: a player or an anonymous id) in
  `players_actors`, and each player's row holds the sum over the actors it owns
  (itself, unless linked elsewhere, and its linked anonymous ids): event count,
  first_seen and last_seen (by event time), login count and last_login
  (`login_success` track events and unified `login`). When a link arrives or
  moves, the players it concerns are recomputed from their actors, so the link
  may come before or after the activity.
* **money**: every movement of the movement table (`projections.movements`:
  which event counts as which deposit, withdrawal, bet, win, cashback, refund
  or adjustment) is summed per actor, currency, kind and wallet in
  `players_money` (count, exact total, first and last by event time, and the
  EUR figures from `Rates.to_eur`: converted total, first and last, and the
  count and total of movements left unconverted). Like activity, the rows
  carry their `owner` and move with a link; `get_player` sums a player's rows
  into `Player.money` on read (a handful of rows a player), so a link arriving
  after the money needs no recomputation. Totals are exact decimal text, added
  as `Decimal` in the `EXACT` context. A track money event whose money cannot
  be read (free-form properties: amount missing, …) is no movement here
  (`movements_of` gives none; the ledger lists it in `ledger_unreadable`) but
  still counts as activity, as any track event does.
* A row exists while the id has profile events of its own or activity counted
  for it: an anonymous id's own row disappears once it is linked.
* `position` is the highest log position of the events that touched the row,
  `updated_at` the `received_at` of that event: a poller that pages by
  position never misses a change (`list_players`).

Tables (base names; each build has its own, e.g. `players_b2`, and the views by
these names point at the active build): `players`, `players_traits`,
`players_fields`, `players_links`, `players_actors`, `players_money`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Final, TypeVar

import msgspec

from eventstore import RecordedEvent
from projections.database import (
    QUERY_ERRORS,
    ViewsConnection,
    is_missing_table,
    read_transaction,
)
from projections.key_order import in_key_order
from projections.links import create_links_table
from projections.listing import InvalidCursorError, create_listing_indexes, list_changed
from projections.movements import EXACT, MONEY_EVENTS, Movement, movements_of
from projections.protocol import CannotApply, Tables
from projections.rates import NO_RATES, Rates
from projections.timefmt import parse_time, time_text

__all__ = [
    "PLAYER_FIELDS",
    "Flow",
    "InvalidCursorError",
    "MoneyTotals",
    "Player",
    "PlayerMoney",
    "PlayerPage",
    "PlayersProjection",
    "Unconverted",
    "get_player",
    "list_players",
]

PLAYER_FIELDS: Final = (
    "username",
    "registration_date",
    "country",
    "currency",
    "gender",
    "affiliate",
    "operator",
    "tags",
    "consent_email",
    "is_blocked",
)
#: Unified items that count as the player's activity (the `game` item is about a game).
UNIFIED_ACTIVITY: Final = frozenset({"gameround", "deposit", "withdraw", "login"})
#: Event types that count as a login, by source.
LOGINS: Final = frozenset({("track", "login_success"), ("unified", "login")})

MONEY_CHUNK: Final = 50_000
"""Money rows a flush reads back, merges and writes at a time (`_add_money`)."""

_TEXT_FIELDS: Final = frozenset(
    {"username", "country", "currency", "gender", "affiliate", "operator"}
)
_BOOL_FIELDS: Final = frozenset({"consent_email", "is_blocked"})

Key = tuple[str, str, str]
"""(tenant, environment, id)."""
MoneyKey = tuple[str, str, str, str, str, str]
"""(tenant, environment, actor id, currency, kind, wallet): one `players_money` row."""
EurOf = Callable[[Movement], Decimal | None]


class _Identify(msgspec.Struct, gc=False):
    anonymous_id: str | None = None
    traits: dict[str, msgspec.Raw] | None = None
    unset_traits: list[str] | None = None


class _Unified(msgspec.Struct, gc=False):
    data: dict[str, msgspec.Raw]


_IDENTIFY = msgspec.json.Decoder(_Identify)
_UNIFIED = msgspec.json.Decoder(_Unified)
_TEXT = msgspec.json.Decoder(str | None)
_BOOL = msgspec.json.Decoder(bool | None)
_TAGS = msgspec.json.Decoder(list[str] | None)
_MOMENT = msgspec.json.Decoder(datetime | None)
_encode = msgspec.json.encode


def _field_json(name: str, raw: msgspec.Raw) -> str:
    """A unified player field, checked and normalised, as JSON text."""
    value: Any
    if name in _TEXT_FIELDS:
        value = _TEXT.decode(raw)
    elif name in _BOOL_FIELDS:
        value = _BOOL.decode(raw)
    elif name == "tags":
        value = _TAGS.decode(raw)
    else:  # registration_date
        moment = _MOMENT.decode(raw)
        if moment is not None and moment.utcoffset() is None:
            raise CannotApply(f"registration_date {bytes(raw).decode()} has no time zone")
        value = None if moment is None else time_text(moment)
    return _encode(value).decode()


# -- folding one page in memory ------------------------------------------------------------


class _Page:
    """One page reduced to what it changes, before any SQL."""

    __slots__ = (
        "acts",
        "fields",
        "links",
        "money",
        "profile",
        "times",
        "to_eur",
        "touched",
        "traits",
    )

    def __init__(self, to_eur: EurOf) -> None:
        self.to_eur = to_eur
        # datetime → text, for one page at a time (`new_page`), for the profile
        # events (a few percent): activity and money keep datetimes, turned into
        # text once a key when written (`_Texts`), not once an event
        self.times: dict[datetime, str] = {}
        # actor → [events, first_seen, last_seen, logins, last_login, position,
        #          received_at]: the times as datetimes (UTC)
        self.acts: dict[Key, list[Any]] = {}
        self.touched: dict[Key, tuple[int, datetime]] = {}  # row → (position, received_at)
        self.profile: dict[Key, int] = {}
        # (tenant, environment, user, trait) → (time, position, unset, value JSON)
        self.traits: dict[tuple[str, str, str, str], tuple[str, int, int, str | None]] = {}
        self.fields: dict[tuple[str, str, str, str], tuple[str, int, str]] = {}
        # every link, in log order: (anonymous id, time, position, user, received_at)
        self.links: list[tuple[Key, str, int, str, datetime]] = []
        # row → [count, total, first, last, unconverted count, unconverted total,
        #        eur total, eur first, eur last] (first and last: datetimes)
        self.money: dict[MoneyKey, list[Any]] = {}

    def text(self, moment: datetime) -> str:
        text = self.times.get(moment)
        if text is None:
            text = self.times[moment] = time_text(moment)
        return text

    def size(self) -> int:
        """Keys held (what a write-behind buffer's memory grows with)."""
        return (
            len(self.acts)
            + len(self.touched)
            + len(self.profile)
            + len(self.traits)
            + len(self.fields)
            + len(self.links)
            + len(self.money)
        )

    def new_page(self) -> None:
        self.times.clear()

    def touch(self, key: Key, position: int, received: datetime) -> None:
        current = self.touched.get(key)
        if current is None or position > current[0]:
            self.touched[key] = (position, received)

    def add(self, event: RecordedEvent) -> None:
        source, type_ = event.source, event.type
        if source == "track" or (source == "unified" and type_ in UNIFIED_ACTIVITY):
            self._activity(event, (source, type_) in LOGINS)
            if (source, type_) in MONEY_EVENTS:
                self._money(event)
        elif source == "identify":
            self._identify(event)
        elif source == "unified" and type_ == "player":
            self._player(event)

    def _activity(self, event: RecordedEvent, login: bool) -> None:
        key = (event.tenant, event.environment, event.subject)
        when = event.occurred_at
        act = self.acts.get(key)
        if act is None:
            self.acts[key] = [
                1,
                when,
                when,
                int(login),
                when if login else None,
                event.position,
                event.received_at,
            ]
            return
        act[0] += 1
        if when < act[1]:
            act[1] = when
        elif when > act[2]:
            act[2] = when
        if login:
            act[3] += 1
            if act[4] is None or when > act[4]:
                act[4] = when
        act[5] = event.position
        act[6] = event.received_at

    def _money(self, event: RecordedEvent) -> None:
        tenant, environment = event.tenant, event.environment
        for movement in movements_of(event):
            key = (
                tenant,
                environment,
                movement.user_id,
                movement.currency,
                movement.kind,
                movement.wallet,
            )
            when = movement.occurred_at
            eur = self.to_eur(movement)
            add = _money_row(movement.amount, when, eur)
            slot = self.money.get(key)
            if slot is None:
                self.money[key] = add
            else:
                _add_money(slot, add)

    def _profile_event(self, event: RecordedEvent) -> tuple[Key, str]:
        key = (event.tenant, event.environment, event.subject)
        self.profile[key] = self.profile.get(key, 0) + 1
        self.touch(key, event.position, event.received_at)
        return key, self.text(event.occurred_at)

    def _identify(self, event: RecordedEvent) -> None:
        try:
            body = _IDENTIFY.decode(event.payload)
        except msgspec.DecodeError as error:
            raise CannotApply(f"identify payload: {error}") from None
        (tenant, environment, user), when = self._profile_event(event)
        position = event.position
        traits = self.traits
        for name, raw in (body.traits or {}).items():
            candidate = (when, position, 0, bytes(raw).decode())
            slot = (tenant, environment, user, name)
            current = traits.get(slot)
            if current is None or candidate[:3] > current[:3]:
                traits[slot] = candidate
        for name in body.unset_traits or ():
            slot = (tenant, environment, user, name)
            current = traits.get(slot)
            if current is None or (when, position, 1) > current[:3]:
                traits[slot] = (when, position, 1, None)
        anonymous = body.anonymous_id
        if anonymous and anonymous != user:
            self.links.append(
                (
                    (tenant, environment, anonymous),
                    when,
                    position,
                    user,
                    event.received_at,
                )
            )

    def _player(self, event: RecordedEvent) -> None:
        try:
            data = _UNIFIED.decode(event.payload).data
            (tenant, environment, user), when = self._profile_event(event)
            for name in PLAYER_FIELDS:
                raw = data.get(name)
                if raw is None:
                    continue
                slot = (tenant, environment, user, name)
                current = self.fields.get(slot)
                if current is None or (when, event.position) > current[:2]:
                    self.fields[slot] = (when, event.position, _field_json(name, raw))
        except msgspec.DecodeError as error:
            raise CannotApply(f"unified player item: {error}") from None


def _money_row(amount: Decimal, when: datetime, eur: Decimal | None) -> list[Any]:
    """One movement as a `players_money` accumulator (see `_Page.money`)."""
    if eur is None:
        return [1, amount, when, when, 1, amount, Decimal(0), None, None]
    return [1, amount, when, when, 0, Decimal(0), eur, when, when]


_When = TypeVar("_When", str, datetime)


def _earlier(a: _When | None, b: _When | None) -> _When | None:
    return b if a is None or (b is not None and b < a) else a


def _later(a: _When | None, b: _When | None) -> _When | None:
    return b if a is None or (b is not None and b > a) else a


def _player_rows(
    fold: _Page, deltas: dict[Key, list[Any]], texts: _Texts
) -> Iterator[tuple[Any, ...]]:
    """`upsert_player`'s rows, made as they are written (not all at once)."""
    for (t, e, u), (position, received) in in_key_order(fold.touched):
        delta = deltas.get((t, e, u))
        activity = (
            (0, None, None, 0, None)
            if delta is None
            else (delta[0], texts[delta[1]], texts[delta[2]], delta[3], texts.maybe(delta[4]))
        )
        yield (t, e, u, fold.profile.get((t, e, u), 0), *activity, position, texts[received])


class _Texts(dict[datetime, str]):
    """`time_text` of the buffer's times, made once a time for one flush: the
    buffer keeps datetimes (comparing them is cheaper than making text for
    every event), and the keys of a flush share many (a batch's `received_at`)."""

    def __missing__(self, moment: datetime) -> str:
        text = self[moment] = time_text(moment)
        return text

    def maybe(self, moment: datetime | None) -> str | None:
        return None if moment is None else self[moment]


def _add_money(into: list[Any], add: Sequence[Any]) -> None:
    """Add one accumulator to another (inside `localcontext(EXACT)`)."""
    into[0] += add[0]
    into[1] += add[1]
    into[2] = _earlier(into[2], add[2])
    into[3] = _later(into[3], add[3])
    into[4] += add[4]
    into[5] += add[5]
    into[6] += add[6]
    into[7] = _earlier(into[7], add[7])
    into[8] = _later(into[8], add[8])


# -- SQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statements:
    upsert_trait: str
    upsert_field: str
    get_link: str
    upsert_link: str
    move_actor: str
    owners: str
    upsert_actor: str
    upsert_player: str
    traits_of: str
    fields_of: str
    set_profile: str
    activity_of: str
    set_activity: str
    links_of: str
    set_anonymous_ids: str
    delete_empty: str
    money_of_keys: str
    upsert_money: str
    move_money: str


_LATER = "CASE WHEN excluded.{c} > cur.{c} OR cur.{c} IS NULL THEN excluded.{c} ELSE cur.{c} END"
_EARLIER = "CASE WHEN excluded.{c} < cur.{c} OR cur.{c} IS NULL THEN excluded.{c} ELSE cur.{c} END"
_ADD_ACTIVITY = (
    "event_count = cur.event_count + excluded.event_count, "
    f"first_seen = {_EARLIER.format(c='first_seen')}, "
    f"last_seen = {_LATER.format(c='last_seen')}, "
    "login_count = cur.login_count + excluded.login_count, "
    f"last_login = {_LATER.format(c='last_login')}"
)

# Templates: `{players}` and the like are replaced by one build's physical table
# names (from the registry, never from input); values are always parameters.
_SQL: Final = {
    "upsert_trait": (
        "INSERT INTO {players_traits} AS cur "
        "(tenant, environment, user_id, trait, value, unset, time, "
        "position) VALUES (?,?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, user_id, trait) DO UPDATE SET "
        "value = excluded.value, unset = excluded.unset, time = excluded.time, "
        "position = excluded.position "
        "WHERE (excluded.time, excluded.position, excluded.unset) "
        "> (cur.time, cur.position, cur.unset)"
    ),
    "upsert_field": (
        "INSERT INTO {players_fields} AS cur (tenant, environment, user_id, field, value, time, "
        "position) VALUES (?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, user_id, field) DO UPDATE SET "
        "value = excluded.value, time = excluded.time, position = excluded.position "
        "WHERE (excluded.time, excluded.position) > (cur.time, cur.position)"
    ),
    "get_link": (
        "SELECT user_id, time, position FROM {players_links} WHERE {scope} AND anonymous_id = ?"
    ),
    "upsert_link": (
        "INSERT INTO {players_links} (tenant, environment, anonymous_id, user_id, "
        "time, position) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, anonymous_id) DO UPDATE SET "
        "user_id = excluded.user_id, time = excluded.time, position = excluded.position"
    ),
    "move_actor": "UPDATE {players_actors} SET owner = ? WHERE {scope} AND actor_id = ?",
    "owners": (
        "SELECT anonymous_id, user_id FROM {players_links} WHERE {scope} AND anonymous_id {in_json}"
    ),
    "upsert_actor": (
        "INSERT INTO {players_actors} AS cur (tenant, environment, actor_id, owner, event_count, "
        "first_seen, last_seen, login_count, last_login) VALUES (?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, actor_id) DO UPDATE SET {add_activity}"
    ),
    "upsert_player": (
        "INSERT INTO {players} AS cur (tenant, environment, user_id, profile_events, event_count, "
        "first_seen, last_seen, login_count, last_login, position, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, user_id) DO UPDATE SET "
        "profile_events = cur.profile_events + excluded.profile_events, {add_activity}, "
        "updated_at = CASE WHEN excluded.position >= cur.position "
        "THEN excluded.updated_at ELSE cur.updated_at END, "
        "position = CASE WHEN excluded.position > cur.position "
        "THEN excluded.position ELSE cur.position END"
    ),
    "traits_of": (
        "SELECT user_id, trait, value FROM {players_traits} WHERE {scope} "
        "AND user_id {in_json} AND unset = 0 ORDER BY user_id, trait"
    ),
    "fields_of": (
        "SELECT user_id, field, value FROM {players_fields} WHERE {scope} AND user_id {in_json}"
    ),
    "set_profile": (
        "UPDATE {players} SET traits = ?, {profile_columns} WHERE {scope} AND user_id = ?"
    ),
    "activity_of": (
        "SELECT owner, CAST(sum(event_count) AS BIGINT), min(first_seen), max(last_seen), "
        "CAST(sum(login_count) AS BIGINT), "
        "max(last_login) FROM {players_actors} WHERE {scope} AND owner {in_json} "
        "GROUP BY owner"
    ),
    "set_activity": (
        "UPDATE {players} SET event_count = ?, first_seen = ?, last_seen = ?, "
        "login_count = ?, last_login = ? WHERE {scope} AND user_id = ?"
    ),
    "links_of": (
        "SELECT user_id, anonymous_id FROM {players_links} WHERE {scope} "
        "AND user_id {in_json} ORDER BY user_id, anonymous_id"
    ),
    "set_anonymous_ids": "UPDATE {players} SET anonymous_ids = ? WHERE {scope} AND user_id = ?",
    "delete_empty": (
        "DELETE FROM {players} WHERE {scope} AND user_id = ? "
        "AND event_count = 0 AND profile_events = 0"
    ),
    # CROSS JOIN: walk the page's keys and look each one up by primary key (only
    # the rows the page adds to, not every row of its actors).
    "money_of_keys": (
        "SELECT m.actor_id, m.currency, m.kind, m.wallet, m.count, m.total, m.first, m.last, "
        "m.unconverted_count, m.unconverted_total, m.eur_total, m.eur_first, m.eur_last "
        "FROM json_each(?) AS k CROSS JOIN {players_money} AS m "
        "WHERE m.tenant = ? AND m.environment = ? AND m.actor_id = k.value ->> 0 "
        "AND m.currency = k.value ->> 1 AND m.kind = k.value ->> 2 AND m.wallet = k.value ->> 3"
    ),
    # An upsert, not INSERT OR REPLACE: the row is updated in place. The owner is
    # not in the update: SQLite rewrites the entries of every index on a column
    # the SET names, even to the same value, and a stored row's owner is already
    # right (a link moves it with `move_money` before the money is added).
    "upsert_money": (
        "INSERT INTO {players_money} (tenant, environment, actor_id, currency, kind, "
        "wallet, owner, count, total, first, last, unconverted_count, unconverted_total, "
        "eur_total, eur_first, eur_last) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, actor_id, currency, kind, wallet) DO UPDATE SET "
        "count = excluded.count, total = excluded.total, "
        "first = excluded.first, last = excluded.last, "
        "unconverted_count = excluded.unconverted_count, "
        "unconverted_total = excluded.unconverted_total, eur_total = excluded.eur_total, "
        "eur_first = excluded.eur_first, eur_last = excluded.eur_last"
    ),
    "move_money": "UPDATE {players_money} SET owner = ? WHERE {scope} AND actor_id = ?",
}


_FRAGMENTS: Final = {
    "scope": "tenant = ? AND environment = ?",
    "in_json": "IN (SELECT value FROM json_each(?))",
    "add_activity": _ADD_ACTIVITY,
    "profile_columns": ", ".join(f"{name} = ?" for name in PLAYER_FIELDS),
}


def _statements(tables: Tables) -> _Statements:
    names = {base: '"' + name.replace('"', '""') + '"' for base, name in tables.items()}
    return _Statements(**{name: sql.format(**names, **_FRAGMENTS) for name, sql in _SQL.items()})


def _by_scope(keys: Iterable[Key]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for tenant, environment, id_ in keys:
        grouped.setdefault((tenant, environment), []).append(id_)
    return grouped


def _json_list(ids: list[str]) -> str:
    return _encode(ids).decode()


def _field_columns(values: dict[str, str]) -> list[Any]:
    columns: list[Any] = []
    for name in PLAYER_FIELDS:
        text = values.get(name)
        if text is None or text == "null":
            columns.append(None)
        elif name == "tags":
            columns.append(text)
        elif name in _BOOL_FIELDS:
            columns.append(int(text == "true"))
        else:
            columns.append(msgspec.json.decode(text))
    return columns


class _Buffer:
    """Pages folded into one `_Page` until the runner flushes them."""

    __slots__ = ("_fold", "_statements", "_write")

    def __init__(
        self,
        statements: _Statements,
        to_eur: EurOf,
        write: Callable[[ViewsConnection, _Statements, _Page], None],
    ) -> None:
        self._statements = statements
        self._write = write
        self._fold = _Page(to_eur)

    @property
    def size(self) -> int:
        return self._fold.size()

    def fold(self, page: Sequence[RecordedEvent]) -> None:
        fold = self._fold
        fold.new_page()
        with localcontext(EXACT):
            for event in page:
                fold.add(event)

    def flush(self, conn: ViewsConnection) -> None:
        self._write(conn, self._statements, self._fold)


class PlayersProjection:
    """The `players` projection (see the module's docstring for the rules)."""

    name = "players"
    catch_up_cost = 2.5  # relative fold cost an event (25 us an event at 1M; `projections.helpers`)
    version = 3  # 2: money (players_money); 3: unreadable track money counts as none
    tables = (
        "players",
        "players_traits",
        "players_fields",
        "players_links",
        "players_actors",
        "players_money",
    )

    def __init__(self, rates: Rates = NO_RATES) -> None:
        """`rates` gives the EUR figures (default: no rates file, so only `amount_eur`
        and EUR amounts convert); changing it needs a rebuild (docs/money.md)."""
        self.rates = rates
        self._cache: dict[str, _Statements] = {}

    def create(self, db: Any, tables: Tables) -> None:
        scope = {"tenant": str, "environment": str}
        db.table(tables["players"]).create(
            {
                **scope,
                "user_id": str,
                "traits": str,
                **{name: (int if name in _BOOL_FIELDS else str) for name in PLAYER_FIELDS},
                "anonymous_ids": str,
                "first_seen": str,
                "last_seen": str,
                "event_count": int,
                "last_login": str,
                "login_count": int,
                "profile_events": int,
                "position": int,
                "updated_at": str,
            },
            pk=("tenant", "environment", "user_id"),
            not_null={
                "tenant",
                "environment",
                "user_id",
                "traits",
                "anonymous_ids",
                "event_count",
                "login_count",
                "profile_events",
                "position",
                "updated_at",
            },
            defaults={
                "traits": "{}",
                "anonymous_ids": "[]",
                "event_count": 0,
                "login_count": 0,
                "profile_events": 0,
            },
        )
        db.table(tables["players_traits"]).create(
            {
                **scope,
                "user_id": str,
                "trait": str,
                "value": str,
                "unset": int,
                "time": str,
                "position": int,
            },
            pk=("tenant", "environment", "user_id", "trait"),
            not_null={"tenant", "environment", "user_id", "trait", "unset", "time", "position"},
        )
        db.table(tables["players_fields"]).create(
            {**scope, "user_id": str, "field": str, "value": str, "time": str, "position": int},
            pk=("tenant", "environment", "user_id", "field"),
            not_null={"tenant", "environment", "user_id", "field", "value", "time", "position"},
        )
        create_links_table(db, tables["players_links"])
        actors = db.table(tables["players_actors"]).create(
            {
                **scope,
                "actor_id": str,
                "owner": str,
                "event_count": int,
                "first_seen": str,
                "last_seen": str,
                "login_count": int,
                "last_login": str,
            },
            pk=("tenant", "environment", "actor_id"),
            not_null={"tenant", "environment", "actor_id", "owner", "event_count", "login_count"},
        )
        actors.create_index(
            ["tenant", "environment", "owner"], index_name=f"{tables['players_actors']}_by_owner"
        )
        db.table(tables["players_money"]).create(
            {
                **scope,
                "actor_id": str,
                "currency": str,
                "kind": str,
                "wallet": str,
                "owner": str,
                "count": int,
                "total": str,
                "first": str,
                "last": str,
                "unconverted_count": int,
                "unconverted_total": str,
                "eur_total": str,
                "eur_first": str,
                "eur_last": str,
            },
            pk=("tenant", "environment", "actor_id", "currency", "kind", "wallet"),
            not_null={
                "tenant",
                "environment",
                "actor_id",
                "currency",
                "kind",
                "wallet",
                "owner",
                "count",
                "total",
                "first",
                "last",
                "unconverted_count",
                "unconverted_total",
                "eur_total",
            },
        )

    def create_read_indexes(self, db: Any, tables: Tables) -> None:
        """`list_players` pages by position and filters by `updated_at`; `get_player`
        sums a player's money rows by owner. Every flush moves a player's position
        and `updated_at`, so a build catching up would rewrite both entries of
        every player it touches (5x the upsert's cost, measured)."""
        create_listing_indexes(db, tables["players"], "user_id")
        db.table(tables["players_money"]).create_index(
            ["tenant", "environment", "owner"],
            index_name=f"{tables['players_money']}_by_owner",
            if_not_exists=True,
        )

    def _statements(self, tables: Tables) -> _Statements:
        key = tables["players"]
        statements = self._cache.get(key)
        if statements is None:
            statements = self._cache[key] = _statements(tables)
        return statements

    def apply(
        self, page: Sequence[RecordedEvent], conn: ViewsConnection, tables: Tables
    ) -> None:
        buffer = self.buffer(tables)
        buffer.fold(page)
        buffer.flush(conn)

    def buffer(self, tables: Tables) -> _Buffer:
        """Write-behind (`protocol.Buffer`): the pages folded into one `_Page`, whose
        merge rules are order-free, are exactly one bigger page."""
        return _Buffer(self._statements(tables), self.rates.to_eur, self._write)

    def _write(self, conn: ViewsConnection, s: _Statements, fold: _Page) -> None:
        """Merge what `fold` holds into the build's tables."""
        texts = _Texts()
        self._merge_profiles(conn, s, fold)
        recompute, linked_users = self._links(conn, s, fold)
        owner_of = self._owners(conn, s, fold)
        if fold.money:
            self._add_money(conn, s, fold.money, owner_of, texts)
        if fold.acts:
            conn.executemany(  # rows made as written: not all of a flush's at once
                s.upsert_actor,
                (
                    (
                        t,
                        e,
                        a,
                        owner_of.get((t, e, a), a),
                        act[0],
                        texts[act[1]],
                        texts[act[2]],
                        act[3],
                        texts.maybe(act[4]),
                    )
                    for (t, e, a), act in in_key_order(fold.acts)
                ),
            )
        deltas: dict[Key, list[Any]] = {}
        for (t, e, a), act in fold.acts.items():
            owner = (t, e, owner_of.get((t, e, a), a))
            fold.touch(owner, act[5], act[6])
            if owner in recompute:
                continue
            delta = deltas.get(owner)
            if delta is None:
                deltas[owner] = act[:5]
                continue
            delta[0] += act[0]
            delta[1] = min(delta[1], act[1])
            delta[2] = max(delta[2], act[2])
            delta[3] += act[3]
            if act[4] is not None and (delta[4] is None or act[4] > delta[4]):
                delta[4] = act[4]
        conn.executemany(s.upsert_player, _player_rows(fold, deltas, texts))
        if fold.profile:
            self._set_profiles(conn, s, fold.profile)
        if recompute:
            self._set_activity(conn, s, recompute)
        if linked_users:
            self._set_anonymous_ids(conn, s, linked_users)
        if recompute:
            conn.executemany(s.delete_empty, list(recompute))

    @staticmethod
    def _merge_profiles(conn: ViewsConnection, s: _Statements, fold: _Page) -> None:
        if fold.traits:
            conn.executemany(
                s.upsert_trait,
                [
                    (t, e, u, name, value, unset, when, position)
                    for (t, e, u, name), (when, position, unset, value) in in_key_order(fold.traits)
                ],
            )
        if fold.fields:
            conn.executemany(
                s.upsert_field,
                [
                    (t, e, u, name, value, when, position)
                    for (t, e, u, name), (when, position, value) in in_key_order(fold.fields)
                ],
            )

    @staticmethod
    def _links(conn: ViewsConnection, s: _Statements, fold: _Page) -> tuple[set[Key], set[Key]]:
        """Apply the page's links; returns the players whose activity must be
        recomputed (an actor moved between them) and those whose anonymous ids changed.

        Links are taken one by one in log order (not reduced to the page's winner):
        a link that moves an anonymous id touches the player it leaves, and which
        player that is must not depend on where the page boundaries fall.
        """
        recompute: set[Key] = set()
        linked_users: set[Key] = set()
        state: dict[Key, tuple[str, str, int] | None] = {}  # anonymous id → (user, time, pos)
        changed: dict[Key, tuple[str, str, int]] = {}
        for key, when, position, user, received in fold.links:
            t, e, anonymous = key
            if key not in state:
                row = conn.execute(s.get_link, key).fetchone()
                state[key] = None if row is None else (row[0], row[1], row[2])
            current = state[key]
            if current is not None and (current[1], current[2]) >= (when, position):
                continue
            state[key] = changed[key] = (user, when, position)
            linked_users.add((t, e, user))
            previous_owner = anonymous if current is None else current[0]
            if current is not None:
                linked_users.add((t, e, current[0]))
            if previous_owner != user:
                recompute.update(((t, e, previous_owner), (t, e, user)))
                fold.touch((t, e, previous_owner), position, received)
        for key, (user, when, position) in changed.items():
            conn.execute(s.upsert_link, (*key, user, when, position))
            conn.execute(s.move_actor, (user, *key))
            conn.execute(s.move_money, (user, *key))
        return recompute, linked_users

    @staticmethod
    def _add_money(
        conn: ViewsConnection,
        s: _Statements,
        money: dict[MoneyKey, list[Any]],
        owner_of: dict[Key, str],
        texts: _Texts,
    ) -> None:
        """Add the page's money to the stored rows: totals are decimal text, so the
        sums are made here, exactly, rather than in SQL (which would use floats).

        In key order, `MONEY_CHUNK` rows at a time: the stored rows read back and
        the rows to write exist for one chunk at once, not for the whole flush
        (a flush of a long rebuild holds a million money rows)."""
        ordered = in_key_order(money)
        for start in range(0, len(ordered), MONEY_CHUNK):
            PlayersProjection._add_money_chunk(
                conn, s, ordered[start : start + MONEY_CHUNK], owner_of, texts
            )

    @staticmethod
    def _add_money_chunk(
        conn: ViewsConnection,
        s: _Statements,
        chunk: list[tuple[MoneyKey, list[Any]]],
        owner_of: dict[Key, str],
        texts: _Texts,
    ) -> None:
        stored: dict[MoneyKey, Sequence[Any]] = {}
        scoped: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
        for (t, e, actor, currency, kind, wallet), _ in chunk:
            scoped.setdefault((t, e), []).append((actor, currency, kind, wallet))
        for (t, e), keys in scoped.items():
            for row in conn.execute(s.money_of_keys, (_encode(keys).decode(), t, e)):
                count, total, first, last, u_count, u_total, eur, eur_first, eur_last = row[4:]
                stored[(t, e, *row[:4])] = (
                    count,
                    Decimal(total),
                    first,
                    last,
                    u_count,
                    Decimal(u_total),
                    Decimal(eur),
                    eur_first,
                    eur_last,
                )
        rows: list[tuple[Any, ...]] = []
        with localcontext(EXACT):
            for key, held in chunk:
                add: list[Any] = [
                    *held[:2],
                    texts[held[2]],
                    texts[held[3]],
                    *held[4:7],
                    texts.maybe(held[7]),
                    texts.maybe(held[8]),
                ]
                before = stored.get(key)
                if before is not None:
                    merged = list(before)
                    _add_money(merged, add)
                    add = merged
                t, e, actor = key[:3]
                rows.append(
                    (
                        *key,
                        owner_of.get((t, e, actor), actor),
                        add[0],
                        str(add[1]),
                        add[2],
                        add[3],
                        add[4],
                        str(add[5]),
                        str(add[6]),
                        add[7],
                        add[8],
                    )
                )
        conn.executemany(s.upsert_money, rows)

    @staticmethod
    def _owners(conn: ViewsConnection, s: _Statements, fold: _Page) -> dict[Key, str]:
        owner_of: dict[Key, str] = {}
        for (t, e), actors in _by_scope(fold.acts).items():
            for anonymous, user in conn.execute(s.owners, (t, e, _json_list(actors))):
                owner_of[(t, e, anonymous)] = user
        return owner_of

    @staticmethod
    def _set_profiles(conn: ViewsConnection, s: _Statements, users: Iterable[Key]) -> None:
        updates: list[tuple[Any, ...]] = []
        for (t, e), ids in _by_scope(users).items():
            ids_json = _json_list(ids)
            traits: dict[str, list[str]] = {u: [] for u in ids}
            for user, trait, value in conn.execute(s.traits_of, (t, e, ids_json)):
                traits[user].append(f"{_encode(trait).decode()}:{value}")
            fields: dict[str, dict[str, str]] = {u: {} for u in ids}
            for user, field, value in conn.execute(s.fields_of, (t, e, ids_json)):
                fields[user][field] = value
            updates.extend(
                ("{" + ",".join(traits[u]) + "}", *_field_columns(fields[u]), t, e, u) for u in ids
            )
        conn.executemany(s.set_profile, updates)

    @staticmethod
    def _set_activity(conn: ViewsConnection, s: _Statements, owners: Iterable[Key]) -> None:
        updates: list[tuple[Any, ...]] = []
        for (t, e), ids in _by_scope(owners).items():
            found = {
                row[0]: row[1:] for row in conn.execute(s.activity_of, (t, e, _json_list(ids)))
            }
            updates.extend((*found.get(u, (0, None, None, 0, None)), t, e, u) for u in ids)
        conn.executemany(s.set_activity, updates)

    @staticmethod
    def _set_anonymous_ids(conn: ViewsConnection, s: _Statements, users: Iterable[Key]) -> None:
        updates: list[tuple[Any, ...]] = []
        for (t, e), ids in _by_scope(users).items():
            linked: dict[str, list[str]] = {u: [] for u in ids}
            for user, anonymous in conn.execute(s.links_of, (t, e, _json_list(ids))):
                linked[user].append(anonymous)
            updates.extend((_json_list(linked[u]), t, e, u) for u in ids)
        conn.executemany(s.set_anonymous_ids, updates)


# -- queries ------------------------------------------------------------------------------------


class Flow(msgspec.Struct, frozen=True, kw_only=True):
    """Movements of one kind: how many, their exact total, the first and last by event time."""

    count: int
    total: Decimal
    """Exact; encoded in JSON as a string (`"0.30"`)."""
    first: datetime | None
    last: datetime | None


class MoneyTotals(msgspec.Struct, frozen=True, kw_only=True):
    """A player's money in one currency (or in EUR). Bets and wins are split by wallet:
    `bets`, `wins` and `ggr` are cash; `bonus_*` the bonus wallet's."""

    deposits: Flow
    withdrawals: Flow
    bets: Flow
    wins: Flow
    ggr: Decimal
    """Gross gaming revenue, cash: bets minus wins (negative when the player is ahead)."""
    bonus_bets: Flow
    bonus_wins: Flow
    bonus_ggr: Decimal
    cashback: Flow
    refunds: Flow
    adjustment_credits: Flow
    adjustment_debits: Flow


class Unconverted(msgspec.Struct, frozen=True, kw_only=True):
    """Movements of one currency that have no EUR figure (no `amount_eur`, no rate)."""

    count: int
    total: Decimal


class PlayerMoney(msgspec.Struct, frozen=True, kw_only=True):
    """Per currency code, in that currency; and everything that converts, in EUR.

    `eur` is not `currencies["EUR"]`: it also holds the other currencies' movements
    converted (`amount_eur` as sent, else the rates file), and leaves out the
    `unconverted` ones, which are counted per currency instead of guessed.
    """

    currencies: dict[str, MoneyTotals]
    eur: MoneyTotals
    unconverted: dict[str, Unconverted]
    """Per currency, only those with movements left unconverted."""


class Player(msgspec.Struct, frozen=True, kw_only=True):
    """A player as the read model holds it."""

    tenant: str
    environment: str
    user_id: str
    traits: dict[str, Any]
    """The merged identify traits (unset ones absent)."""
    username: str | None
    registration_date: datetime | None
    country: str | None
    currency: str | None
    gender: str | None
    affiliate: str | None
    operator: str | None
    tags: list[str] | None
    consent_email: bool | None
    is_blocked: bool | None
    anonymous_ids: list[str]
    first_seen: datetime | None
    last_seen: datetime | None
    event_count: int
    """Activity events counted for the player (its own and its anonymous ids')."""
    last_login: datetime | None
    login_count: int
    position: int
    """The highest log position of the events that touched this row."""
    updated_at: datetime
    """`received_at` of the event at `position`."""
    money: PlayerMoney
    """Deposits, withdrawals, bets, wins, GGR, … of the player and its anonymous ids."""


class PlayerPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Player]
    next_cursor: str | None
    """Pass it back as `cursor` for the next page; None only when nothing was ever listed."""
    has_more: bool
    """Whether the page was full (ask again at once) or the listing reached the end."""
    position: int
    """The projection's checkpoint: this listing reflects the log up to here."""


_COLUMNS = (
    "tenant, environment, user_id, traits, " + ", ".join(PLAYER_FIELDS) + ", anonymous_ids, "
    "first_seen, last_seen, event_count, last_login, login_count, position, updated_at"
)


def _time_or_none(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


#: (kind, wallet) → the `MoneyTotals` field it adds to; deposits and the like
#: count whatever the wallet, bets and wins are split by it.
_FLOW_OF: Final = {
    ("deposit", "cash"): "deposits",
    ("deposit", "bonus"): "deposits",
    ("withdrawal", "cash"): "withdrawals",
    ("withdrawal", "bonus"): "withdrawals",
    ("bet", "cash"): "bets",
    ("bet", "bonus"): "bonus_bets",
    ("win", "cash"): "wins",
    ("win", "bonus"): "bonus_wins",
    ("cashback", "cash"): "cashback",
    ("cashback", "bonus"): "cashback",
    ("refund", "cash"): "refunds",
    ("refund", "bonus"): "refunds",
    ("adjustment_credit", "cash"): "adjustment_credits",
    ("adjustment_credit", "bonus"): "adjustment_credits",
    ("adjustment_debit", "cash"): "adjustment_debits",
    ("adjustment_debit", "bonus"): "adjustment_debits",
}
_FLOWS: Final = tuple(dict.fromkeys(_FLOW_OF.values()))

_MONEY_COLUMNS: Final = (
    "owner, currency, kind, wallet, count, total, first, last, unconverted_count, "
    "unconverted_total, eur_total, eur_first, eur_last"
)

_FlowSums = dict[str, list[Any]]  # flow name → [count, total, first, last]


def _add_flow(sums: _FlowSums, flow: str, add: tuple[int, Decimal, Any, Any]) -> None:
    """Add (count, total, first, last) to a flow (inside `localcontext(EXACT)`)."""
    if not add[0]:
        return
    current = sums.get(flow)
    if current is None:
        sums[flow] = list(add)
        return
    current[0] += add[0]
    current[1] += add[1]
    current[2] = _earlier(current[2], add[2])
    current[3] = _later(current[3], add[3])


def _totals(sums: _FlowSums) -> MoneyTotals:
    flows = {
        name: Flow(
            count=found[0],
            total=found[1],
            first=_time_or_none(found[2]),
            last=_time_or_none(found[3]),
        )
        if (found := sums.get(name))
        else Flow(count=0, total=Decimal(0), first=None, last=None)
        for name in _FLOWS
    }
    return MoneyTotals(
        **flows,
        ggr=flows["bets"].total - flows["wins"].total,
        bonus_ggr=flows["bonus_bets"].total - flows["bonus_wins"].total,
    )


def _money(rows: Iterable[Sequence[Any]]) -> PlayerMoney:
    """One player's `players_money` rows (any order) summed into `PlayerMoney`."""
    native: dict[str, _FlowSums] = {}
    eur: _FlowSums = {}
    unconverted: dict[str, list[Any]] = {}
    with localcontext(EXACT):
        for row in rows:
            currency, kind, wallet, count, total, first, last = row[1:8]
            u_count, u_total, eur_total, eur_first, eur_last = row[8:]
            flow = _FLOW_OF[(kind, wallet)]
            _add_flow(native.setdefault(currency, {}), flow, (count, Decimal(total), first, last))
            _add_flow(eur, flow, (count - u_count, Decimal(eur_total), eur_first, eur_last))
            if u_count:
                slot = unconverted.setdefault(currency, [0, Decimal(0)])
                slot[0] += u_count
                slot[1] += Decimal(u_total)
        return PlayerMoney(
            currencies={code: _totals(native[code]) for code in sorted(native)},
            eur=_totals(eur),
            unconverted={
                code: Unconverted(count=found[0], total=found[1])
                for code, found in sorted(unconverted.items())
            },
        )


def _money_of(
    conn: ViewsConnection, tenant: str, environment: str, owners: list[str]
) -> dict[str, PlayerMoney]:
    rows: dict[str, list[Sequence[Any]]] = {owner: [] for owner in owners}
    for row in conn.execute(
        f"SELECT {_MONEY_COLUMNS} FROM players_money "  # noqa: S608
        "WHERE tenant = ? AND environment = ? AND owner IN (SELECT value FROM json_each(?))",
        (tenant, environment, _json_list(owners)),
    ):
        rows[row[0]].append(row)
    return {owner: _money(found) for owner, found in rows.items()}


def _player(row: Sequence[Any], money: PlayerMoney) -> Player:
    (
        tenant,
        environment,
        user_id,
        traits,
        username,
        registration_date,
        country,
        currency,
        gender,
        affiliate,
        operator,
        tags,
        consent_email,
        is_blocked,
        anonymous_ids,
        first_seen,
        last_seen,
        event_count,
        last_login,
        login_count,
        position,
        updated_at,
    ) = row
    return Player(
        tenant=tenant,
        environment=environment,
        user_id=user_id,
        traits=msgspec.json.decode(traits),
        username=username,
        registration_date=_time_or_none(registration_date),
        country=country,
        currency=currency,
        gender=gender,
        affiliate=affiliate,
        operator=operator,
        tags=None if tags is None else msgspec.json.decode(tags),
        consent_email=None if consent_email is None else bool(consent_email),
        is_blocked=None if is_blocked is None else bool(is_blocked),
        anonymous_ids=msgspec.json.decode(anonymous_ids),
        first_seen=_time_or_none(first_seen),
        last_seen=_time_or_none(last_seen),
        event_count=event_count,
        last_login=_time_or_none(last_login),
        login_count=login_count,
        position=position,
        updated_at=parse_time(updated_at),
        money=money,
    )


def get_player(
    conn: ViewsConnection, tenant: str, environment: str, user_id: str
) -> Player | None:
    """The player `user_id` of that tenant and environment, from the active build."""
    try:
        with read_transaction(conn):
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM players "  # noqa: S608
                "WHERE tenant = ? AND environment = ? AND user_id = ?",
                (tenant, environment, user_id),
            ).fetchone()
            if row is None:
                return None
            money = _money_of(conn, tenant, environment, [user_id])[user_id]
    except QUERY_ERRORS as error:
        if is_missing_table(error, "players"):
            return None
        raise
    return _player(row, money)


def list_players(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    *,
    updated_since: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> PlayerPage:
    """Players changed after `cursor` (and, if given, received since `updated_since`),
    oldest change first, in pages of `limit` (1 to 1000).

    Order is by (position, user_id): a row that changes while a poller pages
    gets a higher position and so comes again later; nothing is missed. A
    poller asks with `updated_since` once, then keeps passing `next_cursor` (it
    is returned even when the page is empty, pointing at the checkpoint).
    """
    listing = list_changed(
        conn,
        projection="players",
        table="players",
        key="user_id",
        columns=_COLUMNS,
        tenant=tenant,
        environment=environment,
        updated_since=updated_since,
        limit=limit,
        cursor=cursor,
        enrich=lambda c, rows: _money_of(c, tenant, environment, [row[2] for row in rows]),
    )
    money = listing.extra or {}
    return PlayerPage(
        items=[_player(row, money[row[2]]) for row in listing.rows],
        next_cursor=listing.next_cursor,
        has_more=listing.has_more,
        position=listing.position,
    )
