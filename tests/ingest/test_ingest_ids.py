"""Server-generated UUIDv7s and identify's derived ids."""

import re
import threading
import uuid
from collections.abc import Iterator

import pytest

from ingest import UUIDv7Generator, identify_event_id, uuid7

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class FakeClock:
    """A millisecond clock the test moves by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class FixedRandom:
    """Random bits that are always the same (all ones for -1)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self, bits: int) -> int:
        return self.value & ((1 << bits) - 1)


def timestamp_ms(text: str) -> int:
    return uuid.UUID(text).int >> 80


def test_uuid7_has_the_rfc_9562_layout() -> None:
    text = uuid7()

    parsed = uuid.UUID(text)
    assert UUID_TEXT.fullmatch(text)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == text


def test_uuid7_carries_the_clock_in_milliseconds() -> None:
    generate = UUIDv7Generator(clock_ms=FakeClock(1_747_579_080_123))

    assert timestamp_ms(generate()) == 1_747_579_080_123


def test_uuid7_is_monotonic_within_the_process() -> None:
    ids = [uuid7() for _ in range(20_000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_is_monotonic_within_one_millisecond() -> None:
    generate = UUIDv7Generator(clock_ms=FakeClock(1_000))

    ids = [generate() for _ in range(1_000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == 1_000
    assert {timestamp_ms(i) for i in ids} == {1_000}


def test_uuid7_stays_monotonic_when_the_clock_steps_back() -> None:
    clock = FakeClock(5_000)
    generate = UUIDv7Generator(clock_ms=clock)
    before = generate()

    clock.ms = 4_000
    after = generate()

    assert after > before
    assert timestamp_ms(after) == 5_000


def test_uuid7_moves_to_the_next_millisecond_when_the_counter_runs_out() -> None:
    generate = UUIDv7Generator(clock_ms=FakeClock(7_000), random_bits=FixedRandom(-1))
    first = generate()
    # Jump the counter to its last value rather than generating 2**73 ids to get there.
    generate._counter = (1 << 74) - 1

    rolled = generate()

    assert first < rolled
    assert timestamp_ms(rolled) == 7_001


def test_uuid7_a_new_millisecond_restarts_the_counter_at_random() -> None:
    clock = FakeClock(1)
    generate = UUIDv7Generator(clock_ms=clock, random_bits=FixedRandom(0))
    generate()
    generate()
    clock.ms = 2

    assert uuid.UUID(generate()).int & ((1 << 62) - 1) == 0


def test_uuid7_is_safe_to_call_from_several_threads() -> None:
    generate = UUIDv7Generator()
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(generate() for _ in range(2_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [i for out in results for i in out]
    assert len(set(everything)) == 8_000
    assert all(out == sorted(out) for out in results)


# --- identify ------------------------------------------------------------------------------------


def bodies() -> Iterator[tuple[bytes, bytes]]:
    yield b'{"a":1,"b":"x"}', b'{ "b" : "x" , "a" : 1 }'
    yield b'{"t":{"z":[1,2],"y":null}}', b'{"t": {"y": null, "z": [1, 2]}}'
    yield b'{"s":"caf\\u00e9"}', '{"s":"café"}'.encode()


@pytest.mark.parametrize(("one", "two"), list(bodies()))
def test_identify_id_ignores_key_order_spacing_and_escapes(one: bytes, two: bytes) -> None:
    assert identify_event_id(one) == identify_event_id(two)


@pytest.mark.parametrize(
    ("one", "two"),
    [
        (b'{"a":1.10}', b'{"a":1.1}'),
        (b'{"a":1}', b'{"a":1.0}'),
        (b'{"a":1}', b'{"a":"1"}'),
        (b'{"a":[1,2]}', b'{"a":[2,1]}'),
    ],
)
def test_identify_id_changes_with_any_value(one: bytes, two: bytes) -> None:
    assert identify_event_id(one) != identify_event_id(two)


def test_identify_id_is_deterministic_across_calls() -> None:
    body = b'{"user_id":"u","timestamp":"2026-05-18T14:38:00Z"}'

    assert identify_event_id(body) == identify_event_id(bytes(body))
    assert re.fullmatch(r"identify-[0-9a-f]{32}", identify_event_id(body))
