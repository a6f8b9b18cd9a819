"""The envelope: what ingest hands to the event store for each accepted item.

One envelope per accepted event, whatever the endpoint. The store keys it by
``(tenant, environment, event_id)`` and keeps ``payload`` byte for byte, so projections can
re-decode the item exactly as the sender wrote it (money keeps its scale, unknown fields
survive). The store accepts any object with these attributes; this Struct is the one ingest
produces.
"""

from datetime import datetime
from typing import Final

import msgspec

__all__ = ["SOURCES", "SOURCE_IDENTIFY", "SOURCE_TRACK", "SOURCE_UNIFIED", "Envelope"]

#: ``Envelope.source`` for events of ``POST /v1/events/track``.
SOURCE_TRACK: Final = "track"
#: ``Envelope.source`` for bodies of ``POST /v1/events/identify``.
SOURCE_IDENTIFY: Final = "identify"
#: ``Envelope.source`` for items of ``POST /api/v1/events``.
SOURCE_UNIFIED: Final = "unified"
SOURCES: Final = (SOURCE_TRACK, SOURCE_IDENTIFY, SOURCE_UNIFIED)


# gc=False: envelopes hold only str/datetime/bytes/None, so they can never be part of a
# reference cycle, and a large batch of tracked objects would slow every GC pass.
class Envelope(msgspec.Struct, frozen=True, gc=False):
    """One accepted item, ready to append to the log.

    * ``source``: ``"track"``, ``"identify"`` or ``"unified"``.
    * ``type``: the track ``event_name``, ``"identify"``, or the unified ``event`` value.
    * ``event_id``: the sender's id (track ``event_id``, unified ``unique_id``), a
      server-generated UUIDv7 for track events without one, or identify's derived id.
    * ``subject``: the player id, or the ``game_id`` for unified ``game`` items.
    * ``occurred_at``: the item's own timestamp; ``received_at``: when the request arrived.
      Both are aware datetimes in UTC.
    * ``payload``: the item's JSON exactly as received (never re-encoded).
    """

    tenant: str
    environment: str
    source: str
    type: str
    event_id: str
    subject: str
    occurred_at: datetime
    received_at: datetime
    client_id: str | None
    payload: bytes
