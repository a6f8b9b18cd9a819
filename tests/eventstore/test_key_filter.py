"""The Bloom filter never says "absent" for a key it was given."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventstore.key_filter import KeyFilter

signed_64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(signed_64, max_size=300))
def test_every_added_key_might_be_contained(digests: list[int]) -> None:
    key_filter = KeyFilter(capacity=1000)
    key_filter.add_all(digests[::2])
    for digest in digests[1::2]:
        key_filter.add(digest)
    assert all(key_filter.might_contain(d) for d in digests)


def test_false_positives_stay_rare_at_capacity() -> None:
    key_filter = KeyFilter(capacity=100_000)
    spread = [(i * 0x9E3779B97F4A7C15) % 2**64 - 2**63 for i in range(key_filter.capacity)]
    key_filter.add_all(spread)
    probes = [(i * 0xC2B2AE3D27D4EB4F + 7) % 2**64 - 2**63 for i in range(20_000)]
    rate = sum(key_filter.might_contain(p) for p in probes) / len(probes)
    assert rate < 0.03
    assert not key_filter.full
