"""The log's contract: every backend's test class subclasses LogContract.

A subclass provides the `url` fixture (a fresh, empty database per test). The
tests speak only to the public EventLog surface, so they hold for any backend.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import msgspec
import pytest

from eventstore import EventLog, InvalidEnvelope, open_log
from tests.eventstore.helpers import T0, batch, envelope
from tests.eventstore.writers import append_batches


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LogContract:
    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError  # each backend's subclass overrides this fixture

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def log(self, url: str, clock: FakeClock) -> Iterator[EventLog]:
        log = open_log(url, clock=clock)
        yield log
        log.close()

    # -- ordering --------------------------------------------------------------

    def test_positions_start_at_one_and_increase_without_gaps(self, log: EventLog) -> None:
        first = log.append_sync(batch("a", 3))
        second = log.append_sync(batch("b", 2))
        assert [r.position for r in first + second] == [1, 2, 3, 4, 5]
        assert all(r.status == "stored" for r in first + second)
        assert [e.position for e in log.read()] == [1, 2, 3, 4, 5]
        assert log.head() == 5

    def test_read_returns_envelope_fields_as_appended(self, log: EventLog) -> None:
        sent = envelope("e-1", b'{"x": 1}', client_id=None, subject="ply_1")
        log.append_sync([sent])
        (got,) = log.read()
        assert (got.tenant, got.environment, got.source, got.type) == (
            sent.tenant,
            sent.environment,
            sent.source,
            sent.type,
        )
        assert (got.event_id, got.subject, got.client_id, got.payload) == (
            "e-1",
            "ply_1",
            None,
            b'{"x": 1}',
        )
        assert got.occurred_at == T0
        assert got.received_at == T0

    def test_read_pages_by_after_and_limit(self, log: EventLog) -> None:
        log.append_sync(batch("a", 10))
        assert [e.position for e in log.read(after=3, limit=4)] == [4, 5, 6, 7]
        assert log.read(after=10) == []

    def test_read_filters_by_tenant_environment_and_type(self, log: EventLog) -> None:
        log.append_sync(
            [
                envelope("1", tenant="a", environment="live", type_="bet_placed"),
                envelope("2", tenant="b", environment="live", type_="bet_placed"),
                envelope("3", tenant="a", environment="staging", type_="bet_placed"),
                envelope("4", tenant="a", environment="live", type_="login_success"),
            ]
        )
        assert [e.event_id for e in log.read(tenant="a")] == ["1", "3", "4"]
        assert [e.event_id for e in log.read(tenant="a", environment="live")] == ["1", "4"]
        assert [e.event_id for e in log.read(types=["login_success"])] == ["4"]
        assert [e.event_id for e in log.read(tenant="a", types=["bet_placed"])] == ["1", "3"]

    def test_empty_log_has_head_zero_and_reads_nothing(self, log: EventLog) -> None:
        assert log.head() == 0
        assert log.read() == []

    def test_empty_call_stores_nothing(self, log: EventLog) -> None:
        assert log.append_sync([]) == []
        assert log.head() == 0

    # -- duplicates and conflicts ------------------------------------------------

    def test_resent_event_is_a_duplicate_of_the_original_position(self, log: EventLog) -> None:
        log.append_sync(batch("a", 3))
        again = log.append_sync(batch("a", 3))
        assert [(r.status, r.position) for r in again] == [
            ("duplicate", 1),
            ("duplicate", 2),
            ("duplicate", 3),
        ]
        assert log.head() == 3

    def test_key_order_and_whitespace_are_not_content(self, log: EventLog) -> None:
        log.append_sync([envelope("e", b'{"a": 1, "b": {"c": 12.50}}')])
        (result,) = log.append_sync([envelope("e", b'{"b":{"c":12.5},"a":1}')])
        assert (result.status, result.position) == ("duplicate", 1)

    def test_received_at_and_client_id_are_not_content(self, log: EventLog) -> None:
        log.append_sync([envelope("e", client_id="one")])
        later = T0.replace(hour=20)
        (result,) = log.append_sync([envelope("e", client_id="two", received_at=later)])
        assert result.status == "duplicate"

    def test_same_event_id_with_different_content_is_a_conflict(self, log: EventLog) -> None:
        log.append_sync([envelope("e", b'{"timestamp": "2026-05-18T15:10:00.000Z"}')])
        (result,) = log.append_sync([envelope("e", b'{"timestamp": "2026-05-19T09:00:00.000Z"}')])
        assert (result.status, result.position) == ("conflict", 1)
        assert result.original == b'{"timestamp": "2026-05-18T15:10:00.000Z"}'
        assert log.head() == 1

    def test_json_true_and_one_are_different_content(self, log: EventLog) -> None:
        log.append_sync([envelope("e", b'{"flag": true}')])
        (result,) = log.append_sync([envelope("e", b'{"flag": 1}')])
        assert result.status == "conflict"

    def test_duplicates_within_one_call_point_at_the_first(self, log: EventLog) -> None:
        results = log.append_sync(
            [
                envelope("x", b'{"a": 1}'),
                envelope("y", b'{"a": 2}'),
                envelope("x", b'{ "a" : 1 }'),
                envelope("x", b'{"a": 3}'),
            ]
        )
        assert [(r.status, r.position) for r in results] == [
            ("stored", 1),
            ("stored", 2),
            ("duplicate", 1),
            ("conflict", 1),
        ]
        assert log.head() == 2

    def test_same_event_id_in_other_tenant_or_environment_is_a_different_event(
        self, log: EventLog
    ) -> None:
        results = log.append_sync(
            [
                envelope("e", tenant="a"),
                envelope("e", tenant="b"),
                envelope("e", tenant="a", environment="staging"),
            ]
        )
        assert [r.status for r in results] == ["stored", "stored", "stored"]

    # -- size and content ----------------------------------------------------------

    def test_ten_thousand_envelopes_in_one_call(self, log: EventLog) -> None:
        results = log.append_sync(batch("big", 10_000))
        assert [r.position for r in results] == list(range(1, 10_001))
        again = log.append_sync(batch("big", 10_000))
        assert {r.status for r in again} == {"duplicate"}
        assert log.head() == 10_000

    def test_unicode_survives_every_text_field(self, log: EventLog) -> None:
        text = "joueur-é-ü-日本-🎰"
        payload = '{"name": "Zoë 🎲", "city": "Zürich"}'.encode()
        log.append_sync(
            [
                envelope(
                    text,
                    payload,
                    tenant=f"t-{text}",
                    environment="live",
                    type_=f"type-{text}",
                    subject=text,
                    client_id=text,
                )
            ]
        )
        (got,) = log.read()
        assert (got.event_id, got.subject, got.client_id, got.tenant) == (
            text,
            text,
            text,
            f"t-{text}",
        )
        assert got.payload == payload
        (again,) = log.append_sync([envelope(text, payload, tenant=f"t-{text}", type_="x")])
        assert again.status == "duplicate"

    def test_one_megabyte_payload_round_trips(self, log: EventLog) -> None:
        payload = b'{"blob": "' + b"x" * (1024 * 1024) + b'"}'
        log.append_sync([envelope("large", payload)])
        assert log.read()[0].payload == payload

    # -- bad input -------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("tenant", ""),
            ("environment", ""),
            ("event_id", ""),
            ("type", ""),
            ("payload", "not bytes"),
            ("event_id", "nul\x00inside"),
            ("tenant", "lone \ud800 surrogate"),
            ("client_id", "nul\x00"),
            ("subject", None),
            ("occurred_at", "2026-05-18"),
        ],
    )
    def test_bad_envelope_names_the_field_and_stores_nothing_of_the_call(
        self, log: EventLog, field: str, value: object
    ) -> None:
        good = envelope("good")
        bad = msgspec.structs.replace(envelope("bad"), **{field: value})  # no type check
        with pytest.raises(InvalidEnvelope) as raised:
            log.append_sync([good, bad])
        assert raised.value.field == field
        assert raised.value.index == 1
        assert field in str(raised.value)
        assert log.head() == 0

    # -- following -------------------------------------------------------------------

    async def test_follow_catches_up_then_sees_new_appends(self, log: EventLog) -> None:
        log.append_sync(batch("old", 3))
        seen: list[int] = []

        async def consume() -> None:
            async for event in log.follow(after=1, poll_interval=5):
                seen.append(event.position)
                if len(seen) == 4:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await log.append(batch("new", 2))
        await asyncio.wait_for(task, 10)
        assert seen == [2, 3, 4, 5]

    async def test_concurrent_async_appends_are_grouped_and_all_answered(
        self, log: EventLog
    ) -> None:
        calls = [log.append(batch(f"c{i}", 5)) for i in range(200)]
        results = await asyncio.gather(*calls)
        positions = sorted(r.position for rs in results for r in rs)
        assert positions == list(range(1, 1001))

    def test_threads_writing_at_once_with_a_follower_seeing_each_position_once(
        self, log: EventLog
    ) -> None:
        writers, batches, size = 8, 20, 25
        total = writers * batches * size
        seen: list[int] = []
        done = threading.Event()

        def follow() -> None:
            async def run() -> None:
                async for event in log.follow(poll_interval=0.2):
                    seen.append(event.position)
                    if len(seen) >= total:
                        return

            asyncio.run(asyncio.wait_for(run(), 60))
            done.set()

        follower = threading.Thread(target=follow)
        follower.start()

        def write(w: int) -> None:
            for b in range(batches):
                log.append_sync(batch(f"w{w}-{b}", size))

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))
        follower.join(60)
        assert done.is_set()
        assert seen == list(range(1, total + 1))

    def test_processes_writing_at_once_with_a_follower_seeing_each_position_once(
        self, log: EventLog, url: str
    ) -> None:
        processes, batches, size = 3, 15, 40
        total = processes * batches * size
        seen: list[int] = []

        async def follow() -> None:
            async for event in log.follow(poll_interval=0.05):
                seen.append(event.position)
                if len(seen) >= total:
                    return

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            futures = [
                pool.submit(append_batches, url, f"p{p}", batches, size)
                for p in range(processes)
            ]
            asyncio.run(asyncio.wait_for(follow(), 120))
            stored = sum(f.result() for f in futures)
        assert stored == total
        assert seen == list(range(1, total + 1))
        assert len({e.event_id for e in log.read(limit=total + 1)}) == total

    # -- idempotency keys ----------------------------------------------------------------

    def _record(self, log: EventLog, key: str = "k", **changes: object) -> object:
        fields: dict[str, object] = {
            "tenant": "casino-a",
            "environment": "live",
            "key": key,
            "fingerprint": "fp-1",
            "status_code": 202,
            "content_type": "application/json",
            "body": b'{"accepted": 1}',
        }
        fields.update(changes)
        return log.new_idempotency_record(**fields)  # type: ignore[arg-type]

    def test_idempotency_record_is_kept_and_scoped_by_tenant_and_environment(
        self, log: EventLog
    ) -> None:
        record = self._record(log)
        assert log.save_idempotency_sync(record) == record  # type: ignore[arg-type]
        assert log.get_idempotency("casino-a", "live", "k") == record
        assert log.get_idempotency("casino-b", "live", "k") is None
        assert log.get_idempotency("casino-a", "staging", "k") is None

    def test_first_unexpired_idempotency_record_wins(self, log: EventLog) -> None:
        first = self._record(log, fingerprint="fp-1")
        second = self._record(log, fingerprint="fp-2", body=b"other")
        log.save_idempotency_sync(first)  # type: ignore[arg-type]
        assert log.save_idempotency_sync(second) == first  # type: ignore[arg-type]

    def test_idempotency_record_expires_after_the_ttl(
        self, log: EventLog, clock: FakeClock
    ) -> None:
        log.save_idempotency_sync(self._record(log))  # type: ignore[arg-type]
        clock.now += log.idempotency_ttl - 1
        assert log.get_idempotency("casino-a", "live", "k") is not None
        clock.now += 2
        assert log.get_idempotency("casino-a", "live", "k") is None
        replacement = self._record(log, fingerprint="fp-new")
        assert log.save_idempotency_sync(replacement) == replacement  # type: ignore[arg-type]
        clock.now += log.idempotency_ttl + 1
        assert log.purge_idempotency() == 1

    # -- schema ----------------------------------------------------------------------------

    def test_reopening_migrates_idempotently_and_keeps_the_log(
        self, log: EventLog, url: str
    ) -> None:
        log.append_sync(batch("a", 2))
        again = open_log(url)
        try:
            assert again.head() == 2
            assert [r.status for r in again.append_sync(batch("a", 2))] == [
                "duplicate",
                "duplicate",
            ]
        finally:
            again.close()

    # -- named records ----------------------------------------------------------------------

    def test_records_are_stored_replaced_and_listed_by_kind(self, log: EventLog) -> None:
        log.put_record("token", "b", b"2")
        log.put_record("token", "a", b"1")
        log.put_record("setting", "a", b"x")
        log.put_record("token", "a", b"1-revoked")
        assert log.get_record("token", "a") == b"1-revoked"
        assert log.get_record("token", "missing") is None
        assert log.list_records("token") == [("a", b"1-revoked"), ("b", b"2")]

    def test_a_number_and_a_string_holding_it_are_different_content(self, log: EventLog) -> None:
        log.append_sync([envelope("e", b'{"amount": 12.5}')])
        (result,) = log.append_sync([envelope("e", b'{"amount": "12.5"}')])
        assert result.status == "conflict"
