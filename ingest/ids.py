"""Event ids: the sender's, a server-generated UUIDv7, or identify's derived id.

The store deduplicates by ``(tenant, environment, event_id)``, so every envelope needs an id:

* track events use their ``event_id`` when given. Without one, the server generates a
  UUIDv7 (RFC 9562): time-ordered, so ids sort roughly by arrival, and monotonic within this
  process. Such an event cannot be deduplicated on retry; the spec says so too.
* unified items use their ``unique_id``.
* identify bodies have no id field. The id is derived from the content:
  ``"identify-"`` + the first 32 hex digits (128 bits) of the SHA-256 of the body
  re-encoded canonically: object keys sorted, insignificant whitespace dropped, strings
  unescaped and re-escaped the same way, numbers kept exactly as written. An exact retry
  (even re-serialised with other key order or spacing) gets the same id and is deduplicated;
  any change of a value (a new ``timestamp``, a different trait) gets a new id.
"""

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Annotated, Final

import msgspec

__all__ = [
    "IDENTIFY_ID_PREFIX",
    "Identifier",
    "UUIDv7Generator",
    "identify_event_id",
    "uuid7",
]

#: A sender-chosen id: any non-empty string. An empty id would make every id-less item of a
#: tenant collide on the key ``""``.
Identifier = Annotated[str, msgspec.Meta(min_length=1)]

IDENTIFY_ID_PREFIX: Final = "identify-"
_IDENTIFY_HASH_HEX_DIGITS: Final = 32

_RAND_BITS: Final = 74  # 12 bits rand_a + 62 bits rand_b
_RAND_LIMIT: Final = 1 << _RAND_BITS
_RAND_B_MASK: Final = (1 << 62) - 1
_VERSION_7: Final = 0x7 << 76
_VARIANT_RFC: Final = 0b10 << 62


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _random_bits(bits: int) -> int:
    return int.from_bytes(os.urandom((bits + 7) // 8)) >> (-bits % 8)


class UUIDv7Generator:
    """Thread-safe UUIDv7 source, monotonic within the process.

    Layout (RFC 9562 §5.7): 48-bit Unix time in ms, version 7, 12 + 62 random bits, variant
    ``10``. Monotonicity follows RFC 9562 §6.2 method 2: within the same millisecond (or when
    the clock steps back) the 74 random bits are incremented as one counter; when they would
    overflow, the timestamp is advanced by one ms. A fresh millisecond starts the counter at a
    random value below 2**73, leaving at least 2**73 increments of headroom.

    ``clock_ms`` and ``random_bits`` are injectable so tests can drive them.
    """

    def __init__(
        self,
        clock_ms: Callable[[], int] = _clock_ms,
        random_bits: Callable[[int], int] = _random_bits,
    ) -> None:
        self._clock_ms = clock_ms
        self._random_bits = random_bits
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            now = self._clock_ms()
            if now > self._last_ms:
                self._last_ms = now
                self._counter = self._random_bits(_RAND_BITS - 1)
            else:
                self._counter += 1
                if self._counter >= _RAND_LIMIT:
                    self._last_ms += 1
                    self._counter = self._random_bits(_RAND_BITS - 1)
            ms, counter = self._last_ms, self._counter
        value = (
            (ms & 0xFFFF_FFFF_FFFF) << 80
            | _VERSION_7
            | (counter >> 62) << 64
            | _VARIANT_RFC
            | (counter & _RAND_B_MASK)
        )
        hex_ = f"{value:032x}"
        return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


#: The process-wide generator; call ``uuid7()`` for a new id string.
uuid7: Final = UUIDv7Generator()

# Float literals come back as their exact text (msgspec.Raw), so the canonical form keeps
# "1.10" and "1.1" apart and never rounds through a binary float.
_CANONICAL_DECODER: Final = msgspec.json.Decoder(float_hook=msgspec.Raw)
_CANONICAL_ENCODER: Final = msgspec.json.Encoder(order="sorted")


def identify_event_id(body: bytes) -> str:
    """The deterministic id of an identify body (which must be valid JSON)."""
    canonical = _CANONICAL_ENCODER.encode(_CANONICAL_DECODER.decode(body))
    digest = hashlib.sha256(canonical).hexdigest()
    return IDENTIFY_ID_PREFIX + digest[:_IDENTIFY_HASH_HEX_DIGITS]
