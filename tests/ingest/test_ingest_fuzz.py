"""Random and mutated bodies: nothing but RequestInvalid ever escapes, and results hold up."""

import os
from datetime import UTC
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_examples import CONTEXT, example, taxonomy_samples

from ingest import (
    CATALOGUE_MODES,
    Envelope,
    RequestInvalid,
    decode_identify,
    decode_track,
    decode_unified,
)

# INGEST_FUZZ_EXAMPLES=20000 for a long run; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("INGEST_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values that sit on the edges ingest cares about.
INTERESTING = [
    "",
    "NaN",
    "Infinity",
    "12.50",
    "42",
    "true",
    "2026-05-18T14:38:00",
    "2026-05-18T14:38:00Z",
    "2026-05-18T16:38:00+02:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "mobile",
    "phone",
    "gameround",
    "game",
    "bonus",
    "yes",
    "maybe",
    "M",
    "Bet_Placed",
    "bet_placed",
    "game_ended",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(INTERESTING)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=10) | st.sampled_from(["event", "data", "amount"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def mutated(value: Any) -> st.SearchStrategy[Any]:
    """``value`` with some of its parts replaced, removed or extended."""
    options: list[st.SearchStrategy[Any]] = [st.just(value), st.just(value), json_values]
    if isinstance(value, dict) and value:
        options.append(st.fixed_dictionaries({key: mutated(child) for key, child in value.items()}))
        options.append(
            st.sampled_from(sorted(value)).map(
                lambda dropped: {k: v for k, v in value.items() if k != dropped}
            )
        )
        options.append(
            st.tuples(st.text(max_size=8), json_values).map(lambda kv: {**value, kv[0]: kv[1]})
        )
    if isinstance(value, list) and value:
        options.append(st.tuples(*[mutated(child) for child in value]).map(list))
        options.append(st.lists(json_values, max_size=3).map(lambda extra: [*value, *extra]))
    return st.one_of(options)


@st.composite
def byte_mutations(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes inserted, deleted or replaced."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        chunk = draw(st.binary(min_size=0, max_size=4) | st.sampled_from([b'"', b"{", b"]", b","]))
        cut = draw(st.integers(min_value=0, max_value=3))
        data[position : position + cut] = chunk
    return bytes(data)


def bodies(valid: bytes) -> st.SearchStrategy[bytes]:
    document = msgspec.json.decode(valid)
    return st.one_of(
        st.binary(max_size=64),
        json_values.map(msgspec.json.encode),
        mutated(document).map(msgspec.json.encode),
        byte_mutations(valid),
    )


TRACK = b'{"events": [' + b",".join(list(taxonomy_samples().values())[:6]) + b"]}"
IDENTIFY = example("identify_registration.json")
UNIFIED = msgspec.json.encode(
    {
        "items": [
            *msgspec.json.decode(example("unified_curl.json"))["items"],
            {
                "event": "player",
                "data": {
                    "unique_id": "pl",
                    "timestamp": "2025-01-15T12:00:00Z",
                    "player_id": "p",
                    "gender": "M",
                    "tags": ["vip"],
                    "registration_date": "2025-01-01T00:00:00+01:00",
                },
            },
            {
                "event": "game",
                "data": {
                    "unique_id": "g",
                    "timestamp": "2025-01-15T12:00:00Z",
                    "game_id": "g",
                    "has_freespins": "yes",
                },
            },
            {
                "event": "withdraw",
                "data": {
                    "unique_id": "w",
                    "timestamp": "2025-01-15T12:00:00Z",
                    "player_id": "p",
                    "amount": 5,
                    "currency": "EUR",
                    "method": "bank",
                },
            },
            {
                "event": "login",
                "data": {"unique_id": "l", "timestamp": "2025-01-15T12:00:00Z", "player_id": "p"},
            },
        ]
    }
)


def check_request_invalid(error: RequestInvalid) -> None:
    assert error.detail
    for detail in error.detail:
        assert detail.loc[0] == "body"
        assert detail.type
        assert detail.msg
    msgspec.json.encode(error.to_dict())  # the HTTP layer can always answer with it


def check_envelope(envelope: Envelope, body: bytes) -> None:
    assert envelope.occurred_at.tzinfo is UTC
    assert envelope.event_id
    assert envelope.subject
    assert envelope.payload in body


@FUZZ
@given(body=bodies(TRACK), mode=st.sampled_from(CATALOGUE_MODES))
def test_track_never_raises_anything_but_request_invalid(body: bytes, mode: Any) -> None:
    try:
        batch = decode_track(body, **CONTEXT, catalogue_mode=mode)
    except RequestInvalid as error:
        check_request_invalid(error)
        return
    indexes = sorted([a.index for a in batch.accepted] + [e.index for e in batch.errors])
    assert indexes == list(range(batch.received))
    for accepted in batch.accepted:
        check_envelope(accepted.envelope, body)
    msgspec.json.encode(batch.errors)


@FUZZ
@given(body=bodies(IDENTIFY))
def test_identify_never_raises_anything_but_request_invalid(body: bytes) -> None:
    try:
        envelope = decode_identify(body, **CONTEXT)
    except RequestInvalid as error:
        check_request_invalid(error)
        return
    check_envelope(envelope, body)
    assert envelope.event_id.startswith("identify-")


@FUZZ
@given(body=bodies(UNIFIED))
def test_unified_never_raises_anything_but_request_invalid(body: bytes) -> None:
    try:
        envelopes = decode_unified(body, **CONTEXT)
    except RequestInvalid as error:
        check_request_invalid(error)
        items = [d.loc[2] for d in error.detail if len(d.loc) > 2 and d.loc[1] == "items"]
        assert items == sorted(set(items))  # at most one entry per item, in order
        return
    assert envelopes
    for envelope in envelopes:
        check_envelope(envelope, body)


def test_the_fuzz_seeds_are_valid_to_start_with() -> None:
    assert decode_track(TRACK, **CONTEXT, catalogue_mode="strict").errors == []
    assert decode_identify(IDENTIFY, **CONTEXT).subject == "ply_776192"
    assert len(decode_unified(UNIFIED, **CONTEXT)) == 7
