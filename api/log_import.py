"""`playerlog log import`: backfill the log from JSON lines, as if each line came
through the API.

A line is either *wrapped*, an object with a ``payload`` field (every export line is
one), or a *bare* item as a client sends it to the API: a unified item (``event`` +
``data``), a track event (``event_name``) or an identify body (``user_id``). Each item
is decoded by the endpoint's own decoder (``decode_track`` with the tenant's catalogue
mode, ``decode_identify``, ``decode_unified``), so it is validated and turned into an
envelope exactly as the API would, and the envelopes are appended in batches, so the
log's dedup decides stored / duplicate / conflict as it does for the API. Lines the API
would reject, and conflicting ones, come back as ``Rejection``s naming the field and
the reason. See docs/analysts.md for the line shapes and the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import BinaryIO, Final, Literal, Protocol, TypeVar

import msgspec

from api.ingestion import conflict_message
from api.settings import CatalogueMode
from api.tokens import ENVIRONMENTS
from eventstore import AppendResult, InvalidEnvelope, NewEvent
from eventstore.envelope import validate_envelopes
from ingest import (
    SOURCE_IDENTIFY,
    SOURCE_TRACK,
    SOURCE_UNIFIED,
    Envelope,
    ErrorDetail,
    EventError,
    EventErrorCode,
    RequestInvalid,
    decode_identify,
    decode_track,
    decode_unified,
    uuid7,
)
from ingest.problems import field_label, parse_validation_message, to_event_error
from ingest.timestamps import AwareDatetime

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_MAX_LINE_BYTES",
    "Appender",
    "ImportOptions",
    "ImportSummary",
    "LineError",
    "LogImporter",
    "Rejection",
    "Source",
    "import_lines",
    "read_lines",
]

Source = Literal["track", "identify", "unified"]
T = TypeVar("T")

#: Envelopes per append: one transaction (one fsync) for this many lines.
DEFAULT_BATCH_SIZE: Final = 1_000
#: `client_id` of imported items whose line names none (the API's X-Client-Id).
DEFAULT_CLIENT_ID: Final = "playerlog-import"
#: The API's default request limit; a longer line is rejected without being held in memory.
DEFAULT_MAX_LINE_BYTES: Final = 5 * 1024 * 1024

_QUOTED_BYTES: Final = 1_000  # of a too-long line kept in its rejection


class LineError(msgspec.Struct, frozen=True):
    """One reason a line was rejected. `field` is a path in the line as written
    (`payload.data.amount` in a wrapped line, `data.amount` in a bare one)."""

    field: str
    reason: str
    #: The API's code for it: a track `EventErrorCode`, a 422 `type`, or a line-level one
    #: (`json_invalid`, `unknown_kind`, `line_too_long`).
    code: str


class Rejection(msgspec.Struct, frozen=True):
    """A rejected line: its number (from 1), its errors, and its text as read."""

    line: int
    errors: list[LineError]
    text: str


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the command line's flags set. `tenant`, `environment`, `source` and
    `client_id` win over what a line says; `client_id` is also the default."""

    tenant: str | None = None
    environment: str | None = None
    source: Source | None = None
    client_id: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


class ImportSummary(msgspec.Struct, kw_only=True):
    lines: int = 0
    """Lines read, blank ones not counted."""
    stored: int = 0
    """Accepted and new in the log."""
    duplicates: int = 0
    """Accepted, already in the log with the same content (or earlier in the file)."""
    rejected: int = 0
    """Invalid lines and conflicts; each is in the rejects."""
    conflicts: int = 0
    """Of `rejected`: the event id is stored with other content."""
    generated_ids: int = 0
    """Track events without an event_id: given a new id, so importing them again stores
    them again (the API behaves the same)."""
    catalogue_warnings: int = 0
    """Accepted track events the catalogue has findings about (warn mode)."""

    @property
    def accepted(self) -> int:
        return self.stored + self.duplicates


class _Probe(msgspec.Struct, gc=False):
    # Which fields a line has, without decoding their values.
    payload: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    event: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    event_name: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    user_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Wrapped(msgspec.Struct, gc=False):
    payload: msgspec.Raw
    source: Source | None = None
    tenant: str | None = None
    environment: str | None = None
    event_id: str | None = None
    received_at: AwareDatetime | None = None
    client_id: str | msgspec.UnsetType | None = msgspec.UNSET


_PROBE: Final = msgspec.json.Decoder(_Probe)
_WRAPPED: Final = msgspec.json.Decoder(_Wrapped)
_WRAPPED_CHOICES: Final = {"source": (SOURCE_TRACK, SOURCE_IDENTIFY, SOURCE_UNIFIED)}
_WHITESPACE: Final = b" \t\r\n"


class _Rejected(Exception):  # noqa: N818 - control flow inside this module only
    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__(errors[0].reason)


def _reject(field: str, reason: str, code: str) -> _Rejected:
    return _Rejected([LineError(field, reason, code)])


def _join(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix and field else prefix or field or "line"


class _Item(msgspec.Struct, frozen=True, gc=False):
    """A line made sense of: which endpoint's item it is and where it goes."""

    source: Source
    payload: bytes
    prefix: str  # where the item sits in the line: "payload" (wrapped) or "" (bare)
    tenant: str | None
    environment: str | None
    event_id: str | None
    received_at: datetime | None
    client_id: str | msgspec.UnsetType | None


class _Pending(msgspec.Struct, frozen=True, gc=False):
    line: int
    text: bytes
    envelope: Envelope
    id_field: str
    warned: bool  # the catalogue has findings about it (track, warn mode)


class Appender(Protocol):
    """What the importer needs of the log (an `EventLog` is one)."""

    def append_sync(self, envelopes: Sequence[NewEvent]) -> list[AppendResult]: ...


class LogImporter:
    """Feed it lines; it appends accepted items in batches and reports rejections.

    `catalogue_mode(tenant, environment)` is the tenant's mode, as the API looks it up.
    Call `close()` at the end to append the last batch.
    """

    def __init__(
        self,
        log: Appender,
        *,
        options: ImportOptions,
        catalogue_mode: Callable[[str, str], CatalogueMode],
        on_reject: Callable[[Rejection], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if options.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {options.batch_size}")
        if options.environment is not None and options.environment not in ENVIRONMENTS:
            raise ValueError(
                f"environment must be one of {', '.join(ENVIRONMENTS)}, got {options.environment!r}"
            )
        self._log = log
        self._options = options
        self._catalogue_mode = catalogue_mode
        self._on_reject = on_reject
        self._clock = clock
        self._pending: list[_Pending] = []
        self.summary = ImportSummary()

    def feed(self, number: int, line: bytes) -> None:
        """One line of input (`number` counts from 1). Blank lines are skipped."""
        text = line.strip(_WHITESPACE)
        if not text:
            return
        self.summary.lines += 1
        try:
            item = self._item(text)
            envelope, id_field, warned = self._envelope(item)
        except _Rejected as rejected:
            self._rejected(number, rejected.errors, text)
            return
        self._pending.append(_Pending(number, text, envelope, id_field, warned))
        if len(self._pending) >= self._options.batch_size:
            self.flush()

    def too_long(self, number: int, head: bytes, limit: int) -> None:
        """A line longer than `limit` bytes: rejected, quoting its beginning only."""
        self.summary.lines += 1
        error = LineError(
            "line",
            f"the line is longer than {limit:,} bytes (the API's request limit)",
            "line_too_long",
        )
        self._rejected(number, [error], head[:_QUOTED_BYTES])

    def flush(self) -> None:
        """Append the pending batch (one transaction) and count what the log decided.

        Synchronous on purpose: appending in a worker thread while the next batch is
        decoded was measured slower here (about 49k against 61k lines/s): the writer
        thread and the decoding fight over the GIL.
        """
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        results = self._log.append_sync([p.envelope for p in pending])
        for item, result in zip(pending, results, strict=True):
            if result.status != "conflict":
                self.summary.catalogue_warnings += item.warned
            if result.status == "stored":
                self.summary.stored += 1
            elif result.status == "duplicate":
                self.summary.duplicates += 1
            else:
                self.summary.conflicts += 1
                error = LineError(
                    item.id_field,
                    conflict_message(item.envelope, result),
                    EventErrorCode.EVENT_ID_CONFLICT.value,
                )
                self._rejected(item.line, [error], item.text)

    def close(self) -> ImportSummary:
        """Append what is left and return the counts."""
        self.flush()
        return self.summary

    def _rejected(self, number: int, errors: list[LineError], text: bytes) -> None:
        self.summary.rejected += 1
        self._on_reject(Rejection(number, errors, text.decode("utf-8", "replace")))

    # -- making sense of a line ---------------------------------------------------------

    def _item(self, text: bytes) -> _Item:
        try:
            probe = _PROBE.decode(text)
        except msgspec.ValidationError as exc:
            problem = parse_validation_message(str(exc))
            got = f", got {problem.got}" if problem.got else ""
            raise _reject("line", f"the line must be a JSON object{got}", "not_an_object") from None
        except msgspec.DecodeError as exc:
            raise _reject("line", f"the line is not JSON: {exc}", "json_invalid") from None
        except RecursionError:
            raise _reject("line", "the line is nested too deeply", "json_invalid") from None
        if probe.payload is not msgspec.UNSET:
            return self._wrapped(text)
        source = self._options.source or _kind_of(probe)
        return _Item(source, text, "", None, None, None, None, msgspec.UNSET)

    def _wrapped(self, text: bytes) -> _Item:
        try:
            line = _WRAPPED.decode(text)
        except msgspec.ValidationError as exc:
            problem = parse_validation_message(str(exc))
            error = to_event_error(
                problem, index=0, event_id=None, choices=_WRAPPED_CHOICES, root="line"
            )
            raise _reject(field_label(problem.path, "line"), error.message, error.code) from None
        source = self._options.source or line.source
        if source is None:
            raise _reject(
                "source",
                "source is required in a line with a payload (track, identify or unified), "
                "or give --source",
                EventErrorCode.MISSING_FIELD.value,
            )
        return _Item(
            source,
            bytes(line.payload),
            "payload",
            line.tenant,
            line.environment,
            line.event_id,
            line.received_at,
            line.client_id,
        )

    # -- validating it as the API does ----------------------------------------------------

    def _envelope(self, item: _Item) -> tuple[Envelope, str, bool]:
        options = self._options
        tenant = options.tenant or item.tenant
        environment = options.environment or item.environment
        if not tenant:
            raise _reject(
                "tenant",
                "tenant is required: give --tenant, or lines that carry a tenant",
                EventErrorCode.MISSING_FIELD.value,
            )
        if not environment:
            raise _reject(
                "environment",
                "environment is required: give --env, or lines that carry an environment",
                EventErrorCode.MISSING_FIELD.value,
            )
        if environment not in ENVIRONMENTS:
            raise _reject(
                "environment",
                f"environment must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}",
                EventErrorCode.INVALID_VALUE.value,
            )
        client_id = options.client_id or (
            DEFAULT_CLIENT_ID if item.client_id is msgspec.UNSET else item.client_id
        )
        received_at = item.received_at or self._clock()
        warned = False
        if item.source == SOURCE_TRACK:
            envelope, warned = self._track(item, tenant, environment, client_id, received_at)
        elif item.source == SOURCE_IDENTIFY:
            envelope = _decoded(
                item.prefix,
                lambda: decode_identify(
                    item.payload,
                    tenant=tenant,
                    environment=environment,
                    client_id=client_id,
                    received_at=received_at,
                ),
                ("body",),
            )
        else:
            envelope = _decoded(
                item.prefix,
                lambda: decode_unified(
                    b'{"items":[' + item.payload + b"]}",
                    tenant=tenant,
                    environment=environment,
                    client_id=client_id,
                    received_at=received_at,
                )[0],
                ("body", "items", 0),
            )
        id_field = _join(item.prefix, _wire_field(envelope, "event_id"))
        if item.event_id is not None and envelope.event_id != item.event_id:
            raise _reject(
                "event_id",
                f"event_id {item.event_id!r} does not match the id the payload gives "
                f"({envelope.event_id!r}); remove the line's event_id to use the payload's",
                EventErrorCode.INVALID_VALUE.value,
            )
        _check_storable(envelope, item.prefix)
        return envelope, id_field, warned

    def _track(
        self,
        item: _Item,
        tenant: str,
        environment: str,
        client_id: str | None,
        received_at: datetime,
    ) -> tuple[Envelope, bool]:
        generated = False

        def new_event_id() -> str:
            # An export line keeps the id the server gave an event sent without one, so a
            # re-import is deduplicated; a bare event gets a new one, as from the API.
            nonlocal generated
            if item.event_id is not None:
                return item.event_id
            generated = True
            return uuid7()

        batch = _decoded(
            item.prefix,
            lambda: decode_track(
                b'{"events":[' + item.payload + b"]}",
                tenant=tenant,
                environment=environment,
                client_id=client_id,
                received_at=received_at,
                catalogue_mode=self._catalogue_mode(tenant, environment),
                new_event_id=new_event_id,
            ),
            ("body", "events", 0),
        )
        if batch.errors:
            raise _Rejected([_track_error(error, item.prefix) for error in batch.errors])
        self.summary.generated_ids += generated
        return batch.accepted[0].envelope, bool(batch.violations)


def _kind_of(probe: _Probe) -> Source:
    if probe.event is not msgspec.UNSET and probe.data is not msgspec.UNSET:
        return SOURCE_UNIFIED
    if probe.event_name is not msgspec.UNSET:
        return SOURCE_TRACK
    if probe.user_id is not msgspec.UNSET:
        return SOURCE_IDENTIFY
    raise _reject(
        "line",
        "cannot tell what the line is: expected a unified item (event and data), a track "
        "event (event_name), an identify body (user_id) or a line with a payload; "
        "or give --source",
        "unknown_kind",
    )


def _decoded(prefix: str, decode: Callable[[], T], loc_prefix: tuple[str | int, ...]) -> T:
    """Run an endpoint's decoder; its 422 becomes the line's errors."""
    try:
        return decode()
    except RequestInvalid as invalid:
        raise _Rejected(
            [_detail_error(detail, prefix, loc_prefix) for detail in invalid.detail]
        ) from None


def _detail_error(detail: ErrorDetail, prefix: str, loc_prefix: tuple[str | int, ...]) -> LineError:
    loc, msg, error_type = detail.loc, detail.msg, detail.type
    if error_type == "json_invalid":
        # Its loc ends with a byte offset into the body the decoder saw, not the line's.
        reason = f"{msg}: {detail.ctx['error']}" if "error" in detail.ctx else msg
        return LineError(prefix or "line", reason, error_type)
    # loc is relative to that body (`["body", "items", 0, "data", ...]`); the line holds
    # just the item.
    inner = loc[len(loc_prefix) :] if tuple(loc[: len(loc_prefix)]) == loc_prefix else loc[1:]
    return LineError(_join(prefix, field_label(inner, "")), msg, error_type)


def _track_error(error: EventError, prefix: str) -> LineError:
    # Track messages are built as "<field> <reason>" (ingest.problems, the catalogue);
    # the two codes that are not about one field say so here.
    if error.code is EventErrorCode.PAYLOAD_TOO_LARGE:
        field = ""
    elif error.code is EventErrorCode.UNKNOWN_EVENT:
        field = "event_name"
    else:
        field = error.message.split(" ", 1)[0]
        field = "" if field == "event" else field
    return LineError(_join(prefix, field), error.message, error.code.value)


def _wire_field(envelope: Envelope, field: str) -> str:
    """What the sender calls an envelope field (cf. api.ingestion._wire_field)."""
    if field in ("tenant", "environment", "client_id"):
        return field
    if envelope.source == SOURCE_UNIFIED:
        if field == "type":
            return "event"
        if field == "subject":
            return "data.game_id" if envelope.type == "game" else "data.player_id"
        return "data.unique_id" if field == "event_id" else f"data.{field}"
    return {"subject": "user_id", "type": "event_name"}.get(field, field)


def _check_storable(envelope: Envelope, prefix: str) -> None:
    # Text the log refuses though the wire contracts let it through (a NUL in an id):
    # the API rejects the item; so does the import, before it reaches a batch.
    try:
        validate_envelopes((envelope,))
    except InvalidEnvelope as problem:
        wire = _wire_field(envelope, problem.field)
        field = (
            wire if problem.field in ("tenant", "environment", "client_id") else _join(prefix, wire)
        )
        raise _reject(
            field, f"{field} {problem.reason}", EventErrorCode.INVALID_VALUE.value
        ) from None


def read_lines(
    stream: BinaryIO, max_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes, bool]]:
    """`(number, line, too_long)` for each line; a line over `max_bytes` is read past in
    chunks and only its first `max_bytes` are yielded, so memory stays bounded."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield number, line, False
            continue
        head = line[:max_bytes]
        while line and not line.endswith(b"\n"):
            line = stream.readline(max_bytes)
        yield number, head, True


def import_lines(
    importer: LogImporter,
    stream: BinaryIO,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 1_000,
) -> ImportSummary:
    """Feed every line of `stream` to `importer`, then append what is left.

    `on_progress(lines_read)` is called every `progress_every` lines.
    """
    number = 0
    for number, line, too_long in read_lines(stream, max_line_bytes):
        if too_long:
            importer.too_long(number, line, max_line_bytes)
        else:
            importer.feed(number, line)
        if on_progress is not None and number % progress_every == 0:
            on_progress(number)
    summary = importer.close()
    if on_progress is not None:
        on_progress(number)
    return summary
