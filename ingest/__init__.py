"""ingest: the wire contracts of playerlog's three endpoints, and their envelopes.

From request bytes to the envelopes the event store appends, with nothing of HTTP or SQL:

* ``decode_track(body, ...) -> TrackBatch``: ``POST /v1/events/track``; each event accepted
  or rejected on its own (``EventError``), catalogue findings beside (``Violation``).
* ``decode_identify(body, ...) -> Envelope``: ``POST /v1/events/identify``.
* ``decode_unified(body, ...) -> list[Envelope]``: ``POST /api/v1/events``; all or nothing.

A malformed request raises ``RequestInvalid``, whose ``detail`` is the spec's 422 list of
``ErrorDetail`` (``loc``, ``msg``, ``type``, ``input``, ``ctx``). Decoders are built once at
import; bodies are decoded straight from bytes, strictly (``"42"`` is not an int), money
exactly into ``Decimal``, timestamps must carry a zone and are converted to UTC.
"""

from ingest.catalogue import (
    CATALOGUE_MODES,
    Catalogue,
    CatalogueMode,
    JsonType,
    Violation,
    ViolationCode,
    default_catalogue,
)
from ingest.envelope import SOURCE_IDENTIFY, SOURCE_TRACK, SOURCE_UNIFIED, Envelope
from ingest.errors import ErrorDetail, EventError, EventErrorCode, RequestInvalid
from ingest.identify import IDENTIFY_TYPE, IdentifyRequest, decode_identify
from ingest.ids import UUIDv7Generator, identify_event_id, uuid7
from ingest.money import MAX_AMOUNT, MAX_DECIMAL_PLACES
from ingest.track import (
    DEVICE_TYPES,
    MAX_EVENT_BYTES,
    MAX_TRACK_EVENTS,
    PLATFORMS,
    AcceptedEvent,
    EventViolation,
    TrackBatch,
    TrackEvent,
    TrackRequest,
    decode_track,
    decode_track_event,
)
from ingest.unified import (
    MAX_UNIFIED_ITEMS,
    UNIFIED_EVENTS,
    DepositData,
    DepositItem,
    GameData,
    GameItem,
    GameRoundData,
    GameRoundItem,
    LoginData,
    LoginItem,
    PlayerData,
    PlayerItem,
    UnifiedItem,
    UnifiedRequest,
    WithdrawData,
    WithdrawItem,
    decode_unified,
    decode_unified_item,
)

__all__ = [
    "CATALOGUE_MODES",
    "DEVICE_TYPES",
    "IDENTIFY_TYPE",
    "MAX_AMOUNT",
    "MAX_DECIMAL_PLACES",
    "MAX_EVENT_BYTES",
    "MAX_TRACK_EVENTS",
    "MAX_UNIFIED_ITEMS",
    "PLATFORMS",
    "SOURCE_IDENTIFY",
    "SOURCE_TRACK",
    "SOURCE_UNIFIED",
    "UNIFIED_EVENTS",
    "AcceptedEvent",
    "Catalogue",
    "CatalogueMode",
    "DepositData",
    "DepositItem",
    "Envelope",
    "ErrorDetail",
    "EventError",
    "EventErrorCode",
    "EventViolation",
    "GameData",
    "GameItem",
    "GameRoundData",
    "GameRoundItem",
    "IdentifyRequest",
    "JsonType",
    "LoginData",
    "LoginItem",
    "PlayerData",
    "PlayerItem",
    "RequestInvalid",
    "TrackBatch",
    "TrackEvent",
    "TrackRequest",
    "UUIDv7Generator",
    "UnifiedItem",
    "UnifiedRequest",
    "Violation",
    "ViolationCode",
    "WithdrawData",
    "WithdrawItem",
    "decode_identify",
    "decode_track",
    "decode_track_event",
    "decode_unified",
    "decode_unified_item",
    "default_catalogue",
    "identify_event_id",
    "uuid7",
]
