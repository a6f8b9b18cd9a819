"""The three ingest use cases: decode, append durably, and say what happened.

Handlers call exactly one of `track`, `identify` or `unified`; everything here
speaks in wire terms (ingest) and log terms (eventstore), never HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec

from api.auth import Principal
from api.metrics import Metrics
from api.tenants import TenantSettingsStore
from eventstore import (
    AppendResult,
    EventLog,
    InvalidEnvelope,
    LogError,
    LogOverloaded,
    differing_fields,
)
from eventstore.envelope import validate_envelopes
from ingest import (
    Envelope,
    ErrorDetail,
    EventError,
    EventErrorCode,
    EventViolation,
    RequestInvalid,
    decode_identify,
    decode_track,
    decode_unified,
)

__all__ = [
    "ConflictRecord",
    "IngestService",
    "StoreFailed",
    "TrackOutcome",
    "TrackResponse",
]


class TrackResponse(msgspec.Struct, frozen=True):
    accepted: int
    rejected: int
    errors: list[EventError]
    position: int | None = None
    """The log position of the request's last accepted event (read your writes)."""


class TrackOutcome(msgspec.Struct, frozen=True):
    response: TrackResponse
    violations: list[EventViolation]


class IdentifyResponse(msgspec.Struct, frozen=True):
    user_id: str
    position: int | None = None


class StoreFailed(Exception):  # noqa: N818
    """The log could not store a unified batch: 510 listing the unique_ids not stored."""

    def __init__(self, unique_ids: list[str], reason: str) -> None:
        self.unique_ids = unique_ids
        self.reason = reason
        super().__init__(reason)


class ConflictRecord(msgspec.Struct, frozen=True):
    """A unified item whose unique_id was already stored with other content."""

    tenant: str
    environment: str
    unique_id: str
    event: str
    original_position: int
    differing_fields: list[str]
    received_at: datetime
    client_id: str | None
    payload: str


def conflict_message(envelope: Envelope, result: AppendResult) -> str:
    fields = differing_fields(result.original or b"", envelope.payload)
    named = ", ".join(fields[:8]) or "payload"
    return (
        f"event_id {envelope.event_id} is already stored (log position {result.position}) "
        f"with different content (differs in: {named}); resend the original content, "
        f"or use a new event_id for a new event"
    )


# The log refuses some text that the wire contracts let through: a NUL character in
# an id (`"user_id": "a\u0000b"`), which PostgreSQL text cannot hold. Such an item is
# the sender's mistake, so it must get the sender's error (a per-event INVALID_VALUE,
# or a 422), not a 500 for the whole batch, nor, on the unified endpoint, a 510 the
# sender would retry for ever. The log's own check (`validate_envelopes`) is the
# rule; it is run item by item only after the log refused a batch, so the common
# path pays nothing. (The better home for this check is ingest's validation.)
_ENVELOPE_TO_WIRE = {"subject": "user_id", "event_id": "event_id", "type": "event_name"}


def _refusals(envelopes: Sequence[Envelope]) -> dict[int, InvalidEnvelope]:
    """The envelopes the log would refuse, by index in `envelopes`."""
    refused: dict[int, InvalidEnvelope] = {}
    for index, envelope in enumerate(envelopes):
        try:
            validate_envelopes((envelope,))
        except InvalidEnvelope as problem:
            refused[index] = problem
    return refused


def _wire_field(envelope: Envelope, field: str) -> str:
    if field == "client_id":
        return "X-Client-Id"
    if envelope.source == "unified":
        if field == "event_id":
            return "unique_id"
        if field == "subject":
            return "game_id" if envelope.type == "game" else "player_id"
    return _ENVELOPE_TO_WIRE.get(field, field)


def _sent_event_id(payload: bytes) -> str | None:
    document = msgspec.json.decode(payload)
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) and "\x00" not in event_id else None


def _refusal_detail(
    envelope: Envelope, problem: InvalidEnvelope, loc: list[str | int]
) -> ErrorDetail:
    field = _wire_field(envelope, problem.field)
    loc = ["header", "x-client-id"] if field == "X-Client-Id" else [*loc, field]
    return ErrorDetail(
        loc=loc,
        msg=f"{field} {problem.reason}",
        type="value_error",
        input=getattr(envelope, problem.field, None),
        ctx={},
    )


class IngestService:
    def __init__(
        self,
        log: EventLog,
        tenants: TenantSettingsStore,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.log = log
        self.tenants = tenants
        self.metrics = metrics
        self._clock = clock

    async def _append(self, envelopes: Sequence[Envelope]) -> list[AppendResult]:
        started = time.perf_counter()
        results = await self.log.append(envelopes)
        self.metrics.append_seconds.observe(time.perf_counter() - started)
        return results

    async def track(self, body: bytes, who: Principal, client_id: str | None) -> TrackOutcome:
        mode = self.tenants.get(who.tenant, who.environment).catalogue_mode
        batch = decode_track(
            body,
            tenant=who.tenant,
            environment=who.environment,
            client_id=client_id,
            received_at=self._clock(),
            catalogue_mode=mode,
        )
        errors = list(batch.errors)
        items, violations = batch.accepted, batch.violations
        try:
            results = await self._append(batch.envelopes)
        except InvalidEnvelope:
            # Reject just the events the log refuses (see _refusals); keep the others.
            refused = _refusals(batch.envelopes)
            errors.extend(
                EventError(
                    index=items[i].index,
                    event_id=_sent_event_id(items[i].envelope.payload),
                    code=EventErrorCode.INVALID_VALUE,
                    message=f"{_wire_field(items[i].envelope, problem.field)} {problem.reason}",
                )
                for i, problem in refused.items()
            )
            gone = {items[i].index for i in refused}
            items = [item for i, item in enumerate(items) if i not in refused]
            violations = [v for v in violations if v.index not in gone]
            results = await self._append([item.envelope for item in items])
        for finding in violations:
            self.metrics.catalogue_violations.labels(finding.violation.code).inc()
        rejected = len(errors)
        accepted = duplicates = conflicts = 0
        position: int | None = None
        statuses = [result.status for result in results]
        if "conflict" not in statuses:
            # The usual batch: list operations in C instead of a Python step per event.
            accepted = len(statuses)
            duplicates = statuses.count("duplicate")
            if results:
                position = max([result.position for result in results])
        else:
            for item, result in zip(items, results, strict=True):
                if result.status == "conflict":
                    conflicts += 1
                    errors.append(
                        EventError(
                            index=item.index,
                            event_id=item.envelope.event_id,
                            code=EventErrorCode.EVENT_ID_CONFLICT,
                            message=conflict_message(item.envelope, result),
                        )
                    )
                    continue
                accepted += 1
                duplicates += result.status == "duplicate"
                position = max(position or 0, result.position)
        errors.sort(key=lambda e: e.index)
        self.metrics.count_events("track", "accepted", accepted - duplicates)
        self.metrics.count_events("track", "duplicate", duplicates)
        self.metrics.count_events("track", "conflict", conflicts)
        self.metrics.count_events("track", "rejected", rejected)
        return TrackOutcome(TrackResponse(accepted, len(errors), errors, position), violations)

    async def identify(
        self, body: bytes, who: Principal, client_id: str | None
    ) -> IdentifyResponse:
        envelope = decode_identify(
            body,
            tenant=who.tenant,
            environment=who.environment,
            client_id=client_id,
            received_at=self._clock(),
        )
        try:
            (result,) = await self._append([envelope])
        except InvalidEnvelope as problem:  # see _refusals
            raise RequestInvalid([_refusal_detail(envelope, problem, ["body"])]) from None
        outcome = "accepted" if result.status == "stored" else result.status
        self.metrics.count_events("identify", outcome, 1)
        return IdentifyResponse(user_id=envelope.subject, position=result.position)

    async def unified(
        self, body: bytes, who: Principal, client_id: str | None
    ) -> tuple[int | None, int]:
        """Store a whole unified batch or nothing; returns the last accepted position
        and how many items were accepted (new or already stored).

        Repeated unique_ids are dropped silently; one reused with other content is
        dropped too, counted, and recorded for operators (`conflicts`).
        """
        envelopes = decode_unified(
            body,
            tenant=who.tenant,
            environment=who.environment,
            client_id=client_id,
            received_at=self._clock(),
        )
        try:
            results = await self._append(envelopes)
        except InvalidEnvelope:
            # All or nothing: list every item the log refuses (see _refusals) as a 422.
            raise RequestInvalid(
                [
                    _refusal_detail(envelopes[i], problem, ["body", "items", i, "data"])
                    for i, problem in _refusals(envelopes).items()
                ]
            ) from None
        except LogOverloaded:
            raise
        except (LogError, OSError, RuntimeError) as error:
            # One transaction per batch: when it fails nothing of it is stored.
            raise StoreFailed([e.event_id for e in envelopes], str(error)) from error
        stored = duplicates = 0
        position: int | None = None
        statuses = [result.status for result in results]
        if "conflict" not in statuses:
            # The usual batch: list operations in C instead of a Python step per item.
            duplicates = statuses.count("duplicate")
            stored = len(statuses) - duplicates
            if results:
                position = max([result.position for result in results])
        else:
            for envelope, result in zip(envelopes, results, strict=True):
                if result.status == "conflict":
                    await asyncio.to_thread(self._record_conflict, envelope, result)
                    continue
                stored += result.status == "stored"
                duplicates += result.status == "duplicate"
                position = max(position or 0, result.position)
        self.metrics.count_events("unified", "accepted", stored)
        self.metrics.count_events("unified", "duplicate", duplicates)
        return position, stored + duplicates

    def _record_conflict(self, envelope: Envelope, result: AppendResult) -> None:
        self.metrics.count_events("unified", "conflict", 1)
        record = ConflictRecord(
            tenant=envelope.tenant,
            environment=envelope.environment,
            unique_id=envelope.event_id,
            event=envelope.type,
            original_position=result.position,
            differing_fields=differing_fields(result.original or b"", envelope.payload),
            received_at=envelope.received_at,
            client_id=envelope.client_id,
            payload=envelope.payload.decode("utf-8", "replace"),
        )
        key = f"{envelope.tenant}\x1f{envelope.environment}\x1f{envelope.event_id}"
        self.log.put_record("conflict", key, msgspec.json.encode(record))

    def conflicts(self, who: Principal) -> list[ConflictRecord]:
        prefix = f"{who.tenant}\x1f{who.environment}\x1f"
        return [
            msgspec.json.decode(value, type=ConflictRecord)
            for key, value in self.log.list_records("conflict")
            if key.startswith(prefix)
        ]
