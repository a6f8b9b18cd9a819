"""Content comparison and key hashing, the rules behind duplicate vs conflict."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from eventstore.envelope import differing_fields, key_hash, same_content

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def _shuffled(value: object, rng: random.Random) -> object:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(json_values, st.integers(0, 2**32))
def test_key_order_and_whitespace_never_change_content(value: object, seed: int) -> None:
    compact = json.dumps(value, separators=(",", ":")).encode()
    spaced = json.dumps(_shuffled(value, random.Random(seed)), indent=2).encode()
    assert same_content(compact, spaced)
    assert differing_fields(compact, spaced) == []


@given(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=5), st.data())
def test_changing_one_field_is_different_content_naming_that_field(
    value: dict[str, object], data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(value)))
    changed = {**value, field: ["something", "else", value[field]]}
    old, new = json.dumps(value).encode(), json.dumps(changed).encode()
    assert not same_content(old, new)
    named = differing_fields(old, new)
    assert any(f == field or f.startswith(f"{field}.") for f in named)


def test_numbers_compare_by_exact_value_not_by_type_of_literal() -> None:
    assert same_content(b'{"a": 12.5}', b'{"a": 12.50}')
    assert same_content(b'{"a": 1}', b'{"a": 1.0}')
    assert not same_content(b'{"a": 0.1}', b'{"a": 0.10000000000000001}')
    assert not same_content(b'{"a": true}', b'{"a": 1}')
    assert not same_content(b'{"a": "1"}', b'{"a": 1}')


def test_payloads_that_are_not_json_compare_byte_for_byte() -> None:
    assert same_content(b"\x00raw", b"\x00raw")
    assert not same_content(b"\x00raw", b"\x00raw ")


def test_key_hash_is_stable_signed_64_bit_and_separates_the_parts() -> None:
    h = key_hash("casino-a", "live", "a1b2c3d4-0000-0000-0000-0007")
    assert h == key_hash("casino-a", "live", "a1b2c3d4-0000-0000-0000-0007")
    assert -(2**63) <= h < 2**63
    assert key_hash("ab", "c", "d") != key_hash("a", "bc", "d")
