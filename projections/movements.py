"""Which events move money, and how much: the one table every money read model uses.

`MOVEMENT_TABLE` is the single place that says which event counts as which
movement (docs/money.md shows it as a table):

| source | event type | kind | amount field |
| --- | --- | --- | --- |
| track | `deposit_success` | deposit | `properties.amount` |
| track | `withdrawal_completed` | withdrawal | `properties.amount` |
| track | `bet_placed` | bet | `properties.bet_amount` |
| track | `bet_won` | win | `properties.win_amount` |
| track | `cashback_credited` | cashback | `properties.amount` |
| track | `refund_processed` | refund | `properties.amount` |
| track | `manual_adjustment_credit` | adjustment_credit | `properties.amount` |
| track | `manual_adjustment_debit` | adjustment_debit | `properties.amount` |
| unified | `deposit` | deposit | `data.amount` |
| unified | `withdraw` | withdrawal | `data.amount` |
| unified | `gameround` | bet (`is_win` false) or win (`is_win` true) | `data.amount` |

Statuses: only completed money moves. The Player Platform's other financial
events (`deposit_started`, `deposit_pending`, `deposit_failed`,
`withdrawal_requested`, `withdrawal_processed`, …) are steps towards a movement
or its failure and move nothing; nor do outcomes that repeat a stake already
counted (`bet_lost`, `bet_settled`) or balances (`wallet_balance_updated`). The
unified `deposit` and `withdraw` items have no status field: the spec says they
are sent after success ("Send only after the payout has cleared"), so every one
counts.

Wallet: `"bonus"` when a track event's `properties.wallet_type` is `"bonus"` or
its `properties.is_bonus` is true, or a unified `gameround`'s `is_bonus` is
true; `"cash"` otherwise. Pairing: unified `round_id` is kept; on track events
`properties.round_id` (or, failing that, `properties.bet_id`) when sent.

Amounts are exact: payloads are decoded with `float_hook=Decimal`, so `12.50`
is `Decimal("12.50")` from the JSON text, never a float. A track amount sent as
a string holding a plain decimal (`"12.50"`) is read the same way (track
properties are free-form, and wallets often send money as text to keep it exact).

A money event whose money fields cannot be read (amount or currency missing or
not valid, a wallet, flag or id of the wrong type) is never counted, never as
zero. What happens next depends on where it came from (docs/money.md):

* **unified** items are validated at ingest (amount required, finite, positive,
  currency required), so a bad one here is a bug: `read_movements` and
  `movements_of` raise `CannotApply` naming the field and the event, and the
  runner stops the projection there.
* **track** events' `properties` are free-form (only the catalogue's `strict`
  mode refuses them at ingest), so any client can send one: stopping every
  tenant's read models for it is not an option. `read_movements` returns an
  `UnreadableMoney` with the same message, which the ledger records in
  `ledger_unreadable`; `movements_of` returns no movement for it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from sys import intern
from typing import Any, Final, NamedTuple

import msgspec
from msgspec import UNSET, UnsetType

from eventstore import RecordedEvent
from projections.protocol import CannotApply

__all__ = [
    "EXACT",
    "MAX_AMOUNT",
    "MAX_DECIMAL_PLACES",
    "MONEY_EVENTS",
    "MOVEMENT_KINDS",
    "MOVEMENT_TABLE",
    "WALLETS",
    "Movement",
    "MovementRule",
    "UnreadableMoney",
    "decoding_once",
    "movements_of",
    "read_movements",
]

MOVEMENT_KINDS: Final[tuple[str, ...]] = (
    "deposit",
    "withdrawal",
    "bet",
    "win",
    "cashback",
    "refund",
    "adjustment_credit",
    "adjustment_debit",
)
WALLETS: Final[tuple[str, ...]] = ("cash", "bonus")

#: The same bounds as ingest's (`ingest.money`), repeated because projections
#: never import ingest. Track properties are not typed at ingest, so without
#: them a `1e999999` would make every sum of its currency inexact.
MAX_AMOUNT: Final = Decimal(10) ** 18
MAX_DECIMAL_PLACES: Final = 18

EXACT: Final = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])
"""The context to add money in (`with decimal.localcontext(EXACT): ...`).

Python's default context keeps 28 digits, fewer than an amount of this table
may have (18 before the point, 18 after): a sum would be rounded without a
word. 60 digits hold any sum of such amounts, and `Inexact` is trapped, so a
sum is exact or raises, never rounded.
"""


class MovementRule(NamedTuple):
    """One row of the movement table."""

    kind: str
    """The movement's kind (for unified `gameround`: the kind when `is_win` is false)."""
    amount_field: str
    """Where the amount is: under `properties` (track) or `data` (unified)."""
    win_kind: str | None = None
    """Unified `gameround` only: the kind when `is_win` is true."""


MOVEMENT_TABLE: Final[Mapping[tuple[str, str], MovementRule]] = {
    ("track", "deposit_success"): MovementRule("deposit", "amount"),
    ("track", "withdrawal_completed"): MovementRule("withdrawal", "amount"),
    ("track", "bet_placed"): MovementRule("bet", "bet_amount"),
    ("track", "bet_won"): MovementRule("win", "win_amount"),
    ("track", "cashback_credited"): MovementRule("cashback", "amount"),
    ("track", "refund_processed"): MovementRule("refund", "amount"),
    ("track", "manual_adjustment_credit"): MovementRule("adjustment_credit", "amount"),
    ("track", "manual_adjustment_debit"): MovementRule("adjustment_debit", "amount"),
    ("unified", "deposit"): MovementRule("deposit", "amount"),
    ("unified", "withdraw"): MovementRule("withdrawal", "amount"),
    ("unified", "gameround"): MovementRule("bet", "amount", win_kind="win"),
}
"""(source, event type) → the rule: which kind of movement, and where its amount is."""

#: The (source, type) pairs that move money: the cheap test before any decoding.
MONEY_EVENTS: Final[frozenset[tuple[str, str]]] = frozenset(MOVEMENT_TABLE)


class Movement(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One movement of money, as an event states it."""

    kind: str
    """One of `MOVEMENT_KINDS`."""
    amount: Decimal
    """Exact, from the JSON text; finite and >= 0 (the kind says the direction)."""
    currency: str
    """Upper-case code as sent (ISO 4217, or a crypto code such as `USDT`)."""
    amount_eur: Decimal | None
    """The EUR value the event carries (`amount_eur`), if any."""
    wallet: str
    """`"cash"` or `"bonus"`."""
    user_id: str
    """The event's subject: a player or an anonymous id (the actor)."""
    game_id: str | None
    round_id: str | None
    occurred_at: datetime
    """UTC."""


# Every field optional and untyped (`Any`): the checks below name the field and
# the event, where a typed decode would stop at msgspec's first complaint.
class _TrackProperties(msgspec.Struct, gc=False):
    amount: Any | UnsetType = UNSET
    bet_amount: Any | UnsetType = UNSET
    win_amount: Any | UnsetType = UNSET
    currency: Any | UnsetType = UNSET
    amount_eur: Any | UnsetType = UNSET
    wallet_type: Any | UnsetType = UNSET
    is_bonus: Any | UnsetType = UNSET
    game_id: Any | UnsetType = UNSET
    round_id: Any | UnsetType = UNSET
    bet_id: Any | UnsetType = UNSET


class _Track(msgspec.Struct, gc=False):
    properties: _TrackProperties | None = None


class _UnifiedData(msgspec.Struct, gc=False):
    amount: Any | UnsetType = UNSET
    currency: Any | UnsetType = UNSET
    amount_eur: Any | UnsetType = UNSET
    is_win: Any | UnsetType = UNSET
    is_bonus: Any | UnsetType = UNSET
    game_id: Any | UnsetType = UNSET
    round_id: Any | UnsetType = UNSET


class _Unified(msgspec.Struct, gc=False):
    data: _UnifiedData


# float_hook: every JSON float becomes a Decimal from its own text (exact).
_TRACK: Final = msgspec.json.Decoder(_Track, float_hook=Decimal)
_UNIFIED: Final = msgspec.json.Decoder(_Unified, float_hook=Decimal)

_MAX_CURRENCY_LENGTH: Final = 12
_DECIMAL_TEXT: Final = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?")
_CASH_WALLETS: Final = frozenset({"cash", "real"})


def _where(event: RecordedEvent) -> str:
    return f"{event.source} {event.type} event {event.event_id!r}"


def _amount(value: Any, field: str, event: RecordedEvent, *, required: bool) -> Decimal | None:
    if value is UNSET or value is None:
        if required:
            raise CannotApply(f"{_where(event)}: {field} is missing")
        return None
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        # Track properties are free-form and many wallets send money as a string
        # ("12.50") to keep it exact: a plain decimal written out is just as exact.
        value = Decimal(value)
    # bool is an int subclass, and JSON true is not an amount.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise CannotApply(
            f"{_where(event)}: {field} must be a number (or a string holding a plain "
            f'decimal such as "12.50"), got {msgspec.json.encode(value).decode()}'
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise CannotApply(f"{_where(event)}: {field} must be finite, got {amount}")
    if amount < 0:
        raise CannotApply(f"{_where(event)}: {field} must be >= 0, got {amount}")
    if amount >= MAX_AMOUNT:
        raise CannotApply(f"{_where(event)}: {field} must be below {MAX_AMOUNT}, got {amount}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise CannotApply(
            f"{_where(event)}: {field} has more than {MAX_DECIMAL_PLACES} decimal places"
        )
    if isinstance(exponent, int) and exponent > 0:
        # `1e2` is 100: written out, so sums and responses read `100`, not `1E+2`.
        amount = Decimal(format(amount, "f"))
    return amount


def _currency(value: Any, field: str, event: RecordedEvent) -> str:
    if value is UNSET or value is None:
        raise CannotApply(f"{_where(event)}: {field} is missing")
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_CURRENCY_LENGTH
        or not value.isascii()
        or not value.isalnum()
    ):
        raise CannotApply(
            f"{_where(event)}: {field} must be a currency code (letters and digits, "
            f"1 to {_MAX_CURRENCY_LENGTH}), got {msgspec.json.encode(value).decode()}"
        )
    return intern(value.upper())  # one object per code: buffers hold it in many keys


def _text(value: Any, field: str, event: RecordedEvent) -> str | None:
    if value is UNSET or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric ids are common; the id is the same either way
    raise CannotApply(
        f"{_where(event)}: {field} must be a string, got {msgspec.json.encode(value).decode()}"
    )


def _flag(value: Any, field: str, event: RecordedEvent) -> bool:
    if value is UNSET or value is None:
        return False
    if not isinstance(value, bool):
        raise CannotApply(
            f"{_where(event)}: {field} must be true or false, "
            f"got {msgspec.json.encode(value).decode()}"
        )
    return value


def _track_wallet(props: _TrackProperties, event: RecordedEvent) -> str:
    wallet = props.wallet_type
    label = wallet.lower() if isinstance(wallet, str) else None
    if wallet is UNSET or wallet is None or label in _CASH_WALLETS:
        bonus = False
    elif label == "bonus":
        bonus = True
    else:
        raise CannotApply(
            f"{_where(event)}: properties.wallet_type must be cash, real or bonus, "
            f"got {msgspec.json.encode(wallet).decode()}"
        )
    return "bonus" if bonus or _flag(props.is_bonus, "properties.is_bonus", event) else "cash"


def _from_track(event: RecordedEvent, rule: MovementRule) -> Movement:
    try:
        props = _TRACK.decode(event.payload).properties
    except msgspec.DecodeError as error:
        raise CannotApply(f"{_where(event)}: {error}") from None
    if props is None:
        raise CannotApply(f"{_where(event)}: properties.{rule.amount_field} is missing")
    field = rule.amount_field
    amount = _amount(getattr(props, field), f"properties.{field}", event, required=True)
    assert amount is not None  # required=True
    round_id = _text(props.round_id, "properties.round_id", event)
    if round_id is None:
        round_id = _text(props.bet_id, "properties.bet_id", event)
    return Movement(
        kind=rule.kind,
        amount=amount,
        currency=_currency(props.currency, "properties.currency", event),
        amount_eur=_amount(props.amount_eur, "properties.amount_eur", event, required=False),
        wallet=_track_wallet(props, event),
        user_id=event.subject,
        game_id=_text(props.game_id, "properties.game_id", event),
        round_id=round_id,
        occurred_at=event.occurred_at,
    )


def _from_unified(event: RecordedEvent, rule: MovementRule) -> Movement:
    try:
        data = _UNIFIED.decode(event.payload).data
    except msgspec.DecodeError as error:
        raise CannotApply(f"{_where(event)}: {error}") from None
    kind = rule.kind
    if rule.win_kind is not None:
        if not isinstance(data.is_win, bool):
            got = "nothing" if data.is_win is UNSET else msgspec.json.encode(data.is_win).decode()
            raise CannotApply(f"{_where(event)}: data.is_win must be true or false, got {got}")
        if data.is_win:
            kind = rule.win_kind
    amount = _amount(data.amount, f"data.{rule.amount_field}", event, required=True)
    assert amount is not None  # required=True
    return Movement(
        kind=kind,
        amount=amount,
        currency=_currency(data.currency, "data.currency", event),
        amount_eur=_amount(data.amount_eur, "data.amount_eur", event, required=False),
        wallet="bonus" if _flag(data.is_bonus, "data.is_bonus", event) else "cash",
        user_id=event.subject,
        game_id=_text(data.game_id, "data.game_id", event),
        round_id=_text(data.round_id, "data.round_id", event),
        occurred_at=event.occurred_at,
    )


class UnreadableMoney(msgspec.Struct, frozen=True, gc=False):
    """A track money event whose money fields cannot be read: not a movement."""

    reason: str
    """What is wrong, naming the event and the field, such as
    `track bet_won event 'a1b2': properties.win_amount is missing`."""


# -- one decoding per page, whichever models read it ------------------------------------

# id(event) → (the event, what it moves). The event is kept in the value, so its id
# cannot be reused by another object while the entry lives.
_Memo = dict[int, tuple[RecordedEvent, list[Movement] | UnreadableMoney]]
_decoded = threading.local()  # one runner per thread at most; each its own memo


@contextmanager
def decoding_once() -> Iterator[None]:
    """Within this block (on this thread), `read_movements` and `movements_of`
    decode each event's money once and hand every later caller the same result.

    The runner wraps one page applied to several models with it: players, games
    and the ledger all read the same money events, and decoding them (JSON and
    exact decimals) is most of what those models cost per event. Failures are not
    remembered: a unified item that cannot be read raises for every caller.
    """
    outer = getattr(_decoded, "memo", None)
    if outer is not None:  # nested: the outer block's memo already serves
        yield
        return
    _decoded.memo = {}
    try:
        yield
    finally:
        _decoded.memo = None


def read_movements(event: RecordedEvent) -> list[Movement] | UnreadableMoney:
    """The money `event` moves, or why a track money event's money cannot be read.

    One movement for a money event, none for any other: cheap for the events
    that move nothing (a dict lookup, no decoding). A track money event whose
    money fields cannot be read gives `UnreadableMoney` (its properties are
    free-form, so that is the sender's mistake, not ours); a unified item's
    raises `CannotApply` (validated at ingest, so that is a bug).

    Inside `decoding_once()` an event is decoded once whoever asks: the list
    returned is then shared, so callers must not change it.
    """
    rule = MOVEMENT_TABLE.get((event.source, event.type))
    if rule is None:
        return []
    memo: _Memo | None = getattr(_decoded, "memo", None)
    if memo is not None:
        hit = memo.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
    moved = _read(event, rule)
    if memo is not None:
        memo[id(event)] = (event, moved)
    return moved


def _read(event: RecordedEvent, rule: MovementRule) -> list[Movement] | UnreadableMoney:
    if event.source == "track":
        # One set of checks for both sources: they raise, and only here, for the
        # free-form track properties, is a failure the sender's data, not a stop.
        try:
            return [_from_track(event, rule)]
        except CannotApply as error:
            return UnreadableMoney(reason=str(error))
    return [_from_unified(event, rule)]


def movements_of(event: RecordedEvent) -> list[Movement]:
    """The money `event` moves, for callers that only count movements.

    As `read_movements`, except that a track money event whose money cannot be
    read moves nothing here (`[]`): the ledger lists those events
    (`ledger_unreadable`), so the models that only sum money need not. A
    unified item's bad money still raises `CannotApply`.
    """
    moved = read_movements(event)
    return [] if isinstance(moved, UnreadableMoney) else moved
