"""``POST /api/v1/events``: the unified vendor endpoint, all or nothing.

The body is ``{"items": [item, ...]}``; each item is ``{"event": <type>, "data": {...}}``
with six types (a tagged union on ``event``). If any item is invalid the whole batch is
rejected with a 422 whose ``detail`` lists every invalid item (one entry per item: the first
problem msgspec finds in it), ``loc`` like ``["body", "items", 3, "data", "amount"]``.

Decoding, fastest path first: the body with ``items: list[msgspec.Raw]`` (JSON, envelope,
limits, and each item's bytes for its payload); then the whole batch fully typed in one pass;
only if that fails, each item with the per-item Decoder to find every invalid one.

Field rules beyond the reference page, chosen here:

* money (``amount``, ``amount_eur``) must be a JSON number (a string such as ``"12.50"`` is
  rejected), is decoded exactly, and must be > 0: the page says "positive number" for game
  rounds, and a deposit or withdrawal of 0 or less means nothing. See ``ingest.money`` for
  the upper bounds.
* timestamps (``timestamp``, ``registration_date``) need ``Z`` or an offset and are
  converted to UTC.
* ids (``unique_id``, ``player_id``, ``game_id``, ``round_id``) must be non-empty strings.
* optional fields may be absent or ``null``; unknown fields are accepted and kept in the
  payload; ``currency`` and ``country`` are not checked against ISO lists (crypto casinos use
  codes such as ``USDT``).
"""

from datetime import UTC, datetime
from typing import Final, Literal, get_args

import msgspec

from ingest.body import check_batch_size, decode_body, decode_item, problem_detail, untyped
from ingest.envelope import SOURCE_UNIFIED, Envelope
from ingest.errors import ErrorDetail, RequestInvalid
from ingest.ids import Identifier
from ingest.money import PositiveAmount, dec_hook, float_hook
from ingest.problems import Choices, Problem, ProblemKind
from ingest.timestamps import AwareDatetime, TimestampOutOfRangeError, require_utc, to_utc

__all__ = [
    "GENDERS",
    "HAS_FREESPINS",
    "MAX_UNIFIED_ITEMS",
    "UNIFIED_EVENTS",
    "DepositData",
    "DepositItem",
    "GameData",
    "GameItem",
    "GameRoundData",
    "GameRoundItem",
    "Gender",
    "HasFreespins",
    "LoginData",
    "LoginItem",
    "PlayerData",
    "PlayerItem",
    "UnifiedItem",
    "UnifiedRequest",
    "WithdrawData",
    "WithdrawItem",
    "decode_unified",
    "decode_unified_item",
]

#: Most items in one request; more is a 422.
MAX_UNIFIED_ITEMS: Final = 10_000

HasFreespins = Literal["yes", "no", "unknown"]
Gender = Literal["M", "F"]
HAS_FREESPINS: Final[tuple[str, ...]] = get_args(HasFreespins)
GENDERS: Final[tuple[str, ...]] = get_args(Gender)


# gc=False: decoded items are trees (no reference cycles), and up to 10,000 items of several
# Structs each would otherwise all be tracked by the garbage collector.
class GameRoundData(msgspec.Struct, frozen=True, gc=False):
    unique_id: Identifier
    timestamp: AwareDatetime
    player_id: Identifier
    game_id: Identifier
    round_id: Identifier
    amount: PositiveAmount
    currency: str
    is_win: bool
    is_bonus: bool


class DepositData(msgspec.Struct, frozen=True, gc=False):
    unique_id: Identifier
    timestamp: AwareDatetime
    player_id: Identifier
    amount: PositiveAmount
    currency: str
    method: str
    amount_eur: PositiveAmount | None = None


class WithdrawData(msgspec.Struct, frozen=True, gc=False):
    unique_id: Identifier
    timestamp: AwareDatetime
    player_id: Identifier
    amount: PositiveAmount
    currency: str
    method: str


class PlayerData(msgspec.Struct, frozen=True, gc=False):
    unique_id: Identifier
    timestamp: AwareDatetime
    player_id: Identifier
    username: str | None = None
    registration_date: AwareDatetime | None = None
    country: str | None = None
    currency: str | None = None
    gender: Gender | None = None
    affiliate: str | None = None
    operator: str | None = None
    tags: list[str] | None = None
    consent_email: bool | None = None
    is_blocked: bool | None = None


class GameData(msgspec.Struct, frozen=True, gc=False):
    unique_id: Identifier
    timestamp: AwareDatetime
    game_id: Identifier
    name: str | None = None
    provider: str | None = None
    categories: list[str] | None = None
    features: list[str] | None = None
    themes: list[str] | None = None
    device: str | None = None
    has_freespins: HasFreespins | None = None


class LoginData(msgspec.Struct, frozen=True, gc=False):
    unique_id: Identifier
    timestamp: AwareDatetime
    player_id: Identifier


class GameRoundItem(msgspec.Struct, frozen=True, gc=False, tag_field="event", tag="gameround"):
    """A casino bet (``is_win=false``) or win (``is_win=true``), paired by ``round_id``."""

    data: GameRoundData

    @property
    def subject(self) -> str:
        return self.data.player_id


class DepositItem(msgspec.Struct, frozen=True, gc=False, tag_field="event", tag="deposit"):
    """A successful deposit."""

    data: DepositData

    @property
    def subject(self) -> str:
        return self.data.player_id


class WithdrawItem(msgspec.Struct, frozen=True, gc=False, tag_field="event", tag="withdraw"):
    """A successful withdrawal."""

    data: WithdrawData

    @property
    def subject(self) -> str:
        return self.data.player_id


class PlayerItem(msgspec.Struct, frozen=True, gc=False, tag_field="event", tag="player"):
    """A player registration or profile update."""

    data: PlayerData

    @property
    def subject(self) -> str:
        return self.data.player_id


class GameItem(msgspec.Struct, frozen=True, gc=False, tag_field="event", tag="game"):
    """A new or updated game; its subject is the ``game_id``."""

    data: GameData

    @property
    def subject(self) -> str:
        return self.data.game_id


class LoginItem(msgspec.Struct, frozen=True, gc=False, tag_field="event", tag="login"):
    """A successful player login."""

    data: LoginData

    @property
    def subject(self) -> str:
        return self.data.player_id


UnifiedItem = GameRoundItem | DepositItem | WithdrawItem | PlayerItem | GameItem | LoginItem

# The tags are declared once, on the Structs; everything else reads them from there.
_EVENT_OF: Final[dict[type, str]] = {
    item_type: str(item_type.__struct_config__.tag) for item_type in get_args(UnifiedItem)
}
#: The ``event`` values, in the reference page's order.
UNIFIED_EVENTS: Final[tuple[str, ...]] = tuple(_EVENT_OF.values())


class UnifiedRequest(msgspec.Struct, frozen=True, gc=False):
    """The body of ``POST /api/v1/events``."""

    items: list[UnifiedItem]


class _RawUnifiedRequest(msgspec.Struct, frozen=True, gc=False):
    items: list[msgspec.Raw]


_CHOICES: Final[Choices] = {
    "event": UNIFIED_EVENTS,
    "has_freespins": HAS_FREESPINS,
    "gender": GENDERS,
}
# dec_hook/float_hook decode money exactly and only from JSON numbers (ingest.money).
_RAW_REQUEST: Final = msgspec.json.Decoder(_RawUnifiedRequest)
_REQUEST: Final = msgspec.json.Decoder(UnifiedRequest, dec_hook=dec_hook, float_hook=float_hook)
_ITEM: Final[msgspec.json.Decoder[UnifiedItem]] = msgspec.json.Decoder(
    UnifiedItem, dec_hook=dec_hook, float_hook=float_hook
)


def decode_unified(
    body: bytes,
    *,
    tenant: str,
    environment: str,
    client_id: str | None,
    received_at: datetime,
) -> list[Envelope]:
    """Decode a unified batch into one envelope per item, in request order.

    Raises ``RequestInvalid`` (422) when the body is malformed or any item is invalid; its
    ``detail`` then has one entry per invalid item.
    """
    received_at = require_utc(received_at)
    raw_items = decode_body(_RAW_REQUEST, body, choices=_CHOICES).items
    check_batch_size(len(raw_items), field="items", limit=MAX_UNIFIED_ITEMS, noun="items")
    typed = _decode_all(body)

    envelopes: list[Envelope] = []
    details: list[ErrorDetail] = []
    for index, raw in enumerate(raw_items):
        payload = bytes(raw)
        item = typed[index] if typed is not None else _decode_one(payload)
        if isinstance(item, Problem):
            details.append(_detail(item, index, payload))
            continue
        data = item.data
        timestamp = data.timestamp
        # Hot loop: a UTC timestamp needs no conversion (what _occurred_at would return);
        # other zones, and player items (which carry a second timestamp), take the call.
        if timestamp.tzinfo is UTC and type(item) is not PlayerItem:
            occurred_at = timestamp
        else:
            checked = _occurred_at(item)
            if isinstance(checked, Problem):
                details.append(_detail(checked, index, payload))
                continue
            occurred_at = checked
        if details:  # the batch is rejected anyway: only look for more invalid items
            continue
        envelopes.append(
            Envelope(
                tenant,
                environment,
                SOURCE_UNIFIED,
                _EVENT_OF[type(item)],
                data.unique_id,
                item.subject,
                occurred_at,
                received_at,
                client_id,
                payload,
            )
        )
    if details:
        raise RequestInvalid(details)
    return envelopes


def decode_unified_item(payload: bytes) -> UnifiedItem:
    """Decode one stored unified payload (``{"event": ..., "data": ...}``) into its Struct.

    For readers of the log: money comes back as exact ``Decimal``. Raises
    ``msgspec.ValidationError`` / ``msgspec.DecodeError`` on anything ingest would reject.
    """
    return _ITEM.decode(payload)


def _detail(problem: Problem, index: int, payload: bytes) -> ErrorDetail:
    return problem_detail(
        problem,
        loc_prefix=["body", "items", index],
        document=untyped(payload),
        choices=_CHOICES,
    )


def _decode_all(body: bytes) -> list[UnifiedItem] | None:
    # The one typed pass over the whole batch; None sends the caller to per-item decoding.
    try:
        return _REQUEST.decode(body).items
    except (msgspec.ValidationError, RecursionError):
        return None


def _decode_one(payload: bytes) -> UnifiedItem | Problem:
    return decode_item(_ITEM, payload)


def _occurred_at(item: UnifiedItem) -> datetime | Problem:
    # Timestamps are checked after msgspec: converting an extreme offset to UTC can overflow.
    if isinstance(item, PlayerItem) and item.data.registration_date is not None:
        try:
            to_utc(item.data.registration_date)
        except TimestampOutOfRangeError:
            return Problem(ProblemKind.TIMESTAMP_OUT_OF_RANGE, path=("data", "registration_date"))
    try:
        return to_utc(item.data.timestamp)
    except TimestampOutOfRangeError:
        return Problem(ProblemKind.TIMESTAMP_OUT_OF_RANGE, path=("data", "timestamp"))
