"""``POST /v1/events/identify``: one player's traits, as one envelope.

The body is one object; any problem with it is a 422. The envelope's ``subject`` is the
``user_id`` (which the endpoint echoes back), its ``type`` is ``"identify"``, its payload the
whole body as received (without surrounding whitespace), and its ``event_id`` is derived
from the content so that an exact retry is deduplicated by the store: ``"identify-"`` + the
first 32 hex digits of the SHA-256 of the body re-encoded canonically (keys sorted, no
insignificant whitespace, numbers exactly as written; see ``ingest.ids``). Any change of a
value, including ``timestamp``, makes a new id.

Choices the spec leaves open: ``null`` for an optional field means absent; unknown fields
are accepted (and kept in the payload); ``user_id`` must be a non-empty string; trait values
are free-form JSON.
"""

from datetime import datetime
from typing import Any, Final

import msgspec

from ingest.body import decode_body, raise_invalid, untyped
from ingest.envelope import SOURCE_IDENTIFY, Envelope
from ingest.ids import Identifier, identify_event_id
from ingest.problems import Choices, Problem, ProblemKind
from ingest.timestamps import AwareDatetime, TimestampOutOfRangeError, require_utc, to_utc

__all__ = ["IDENTIFY_TYPE", "IdentifyRequest", "decode_identify"]

#: ``Envelope.type`` of identify envelopes.
IDENTIFY_TYPE: Final = "identify"

_NO_CHOICES: Final[Choices] = {}
_JSON_WHITESPACE: Final = b" \t\r\n"


class IdentifyRequest(msgspec.Struct, frozen=True, gc=False):
    """The body of ``POST /v1/events/identify``."""

    user_id: Identifier
    timestamp: AwareDatetime
    anonymous_id: str | None = None
    traits: dict[str, Any] | None = None
    unset_traits: list[str] | None = None


_REQUEST: Final = msgspec.json.Decoder(IdentifyRequest)


def decode_identify(
    body: bytes,
    *,
    tenant: str,
    environment: str,
    client_id: str | None,
    received_at: datetime,
) -> Envelope:
    """Decode an identify request; ``envelope.subject`` is the ``user_id`` to echo.

    Raises ``RequestInvalid`` (422) when the body is not a valid identify request.
    """
    received_at = require_utc(received_at)
    request = decode_body(_REQUEST, body, choices=_NO_CHOICES)
    try:
        occurred_at = to_utc(request.timestamp)
    except TimestampOutOfRangeError:
        raise_invalid(
            Problem(ProblemKind.TIMESTAMP_OUT_OF_RANGE, path=("timestamp",)),
            loc_prefix=["body"],
            document=untyped(body),
            choices=_NO_CHOICES,
        )
    return Envelope(
        tenant=tenant,
        environment=environment,
        source=SOURCE_IDENTIFY,
        type=IDENTIFY_TYPE,
        event_id=identify_event_id(body),
        subject=request.user_id,
        occurred_at=occurred_at,
        received_at=received_at,
        client_id=client_id,
        # The body is one JSON value; only whitespace around it is not part of the item.
        payload=bytes(body).strip(_JSON_WHITESPACE),
    )
