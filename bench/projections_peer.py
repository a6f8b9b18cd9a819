"""The peer of bench/projections: the eventsourcing library's `ProjectionRunner`.

What a team on the library would write to get the same read models: an
`Application` whose stored events are the log's events, a `Projection` whose
`process_event` folds each event into a materialised view, and that view a
`SQLiteTrackingRecorder` holding the same read-model tables as playerlog's
projections plus the library's tracking table. The fold itself is playerlog's
(`projection.apply([event], ...)`), so the two differ only in how they are driven:
the library applies one event per transaction, with its tracking record, where
playerlog's runner applies a page of events and its checkpoint in one.

Two things the library does not ship for SQLite, added here as small as possible:

* a subscription: its SQLite application recorder raises on `subscribe()`, so
  `PollingSQLiteApplicationRecorder` pages through `select_notifications` (500 at a
  time, as the library's own listen/notify subscription does);
* a mapper from stored events to domain events: the stored state is the log's
  recorded event (msgpack), and the domain event carries it as `record`.

The view file gets `synchronous=NORMAL`, as playerlog's views do; with the stock FULL
every event would pay an fsync, and the comparison would be about durability rather
than the runner.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import msgspec
import sqlite_utils
from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Subscription,
    Tracking,
)
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.projection import ProjectionRunner as LibraryRunner
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteDatastore,
    SQLiteTrackingRecorder,
)

from eventstore import EventLog, RecordedEvent
from projections import Projection

APP_NAME: Final = "logcopy"
SELECT_LIMIT: Final = 500
"""Notifications per select: the library's own subscription takes 500."""
POLL_SECONDS: Final = 0.05
PEER_SYNCHRONOUS: Final = "NORMAL"
COPY_CALL: Final = 2_000

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(RecordedEvent)


# -- the source: the log's events as the library's stored events ------------------------


class PollingSubscription(Subscription[SQLiteApplicationRecorder]):
    """Notifications after `gt`, in order; polls when it has read them all."""

    def __init__(
        self, recorder: SQLiteApplicationRecorder, gt: int | None, topics: Sequence[str]
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._buffer: list[Any] = []
        self._index = 0

    def __next__(self) -> Any:
        while self._index == len(self._buffer):
            if self._has_been_stopped:
                raise StopIteration
            start = (self._last_notification_id or 0) + 1
            found = self._recorder.select_notifications(start, SELECT_LIMIT, topics=self._topics)
            if not found:
                time.sleep(POLL_SECONDS)
                continue
            self._buffer, self._index = list(found), 0
        notification = self._buffer[self._index]
        self._index += 1
        self._last_notification_id = notification.id
        return notification


class PollingSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> PollingSubscription:
        return PollingSubscription(self, gt, topics)


@dataclass(frozen=True)
class LoggedEvent:
    """A domain event carrying one of the log's recorded events."""

    originator_id: uuid.UUID
    originator_version: int
    record: RecordedEvent


class RecordMapper(Mapper[uuid.UUID]):
    def __init__(self) -> None:
        super().__init__(transcoder=JSONTranscoder())

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[uuid.UUID]:
        originator = stored_event.originator_id
        return LoggedEvent(
            originator_id=originator
            if isinstance(originator, uuid.UUID)
            else uuid.UUID(originator),
            originator_version=stored_event.originator_version,
            record=_DECODER.decode(stored_event.state),
        )


class LogCopy(Application[uuid.UUID]):
    """The application whose recorder holds the copied events."""

    name = APP_NAME

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return RecordMapper()


def copy_events(log: EventLog, target: Path, limit: int) -> int:
    """The log's first `limit` events into the library's `stored_events` table at
    `target` (one aggregate per event: originator id from the position, version 1,
    topic `source:type`, state the recorded event as msgpack). Returns the count."""
    datastore = SQLiteDatastore(str(target))
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    copied = 0
    try:
        while copied < limit:
            page = log.read(after=copied, limit=min(COPY_CALL, limit - copied))
            if not page:
                break
            recorder.insert_events(
                [
                    StoredEvent(
                        originator_id=uuid.UUID(int=event.position),
                        originator_version=1,
                        topic=f"{event.source}:{event.type}",
                        state=_ENCODER.encode(event),
                    )
                    for event in page
                ]
            )
            copied = page[-1].position
    finally:
        datastore.close()
    return copied


# -- the view and the projection -------------------------------------------------------------


class PlayerlogViews(SQLiteTrackingRecorder):
    """The peer's materialised view: playerlog's read-model tables (one build, named by
    the base names) and the library's tracking table, in one SQLite file."""

    folds: ClassVar[Sequence[Projection]] = ()
    last_id: ClassVar[int] = 0
    finished: ClassVar[threading.Event]
    finished_at: ClassVar[float] = 0.0

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._raw: dict[int, sqlite3.Connection] = {}
        self._tables = [(p, {base: base for base in p.tables}) for p in self.folds]

    def create_table(self) -> None:
        super().create_table()
        conn = sqlite3.connect(self.datastore.pool.db_name, isolation_level=None)
        try:
            db = sqlite_utils.Database(conn)
            for projection, tables in self._tables:
                if not db[next(iter(tables.values()))].exists():
                    projection.create(db, tables)
        finally:
            conn.close()

    def _connection(self, connection: SQLiteConnection) -> sqlite3.Connection:
        # The pool keeps its connections: each gets the view's durability once, before its
        # first transaction (SQLite refuses to change it inside one).
        raw = self._raw.get(id(connection))
        if raw is None:
            raw = self._raw[id(connection)] = connection.cursor().sqlite_cursor.connection
            raw.execute(f"PRAGMA synchronous={PEER_SYNCHRONOUS}")
        return raw

    def fold(self, event: RecordedEvent, tracking: Tracking) -> None:
        """One event and its tracking record, in one transaction (the library's way)."""
        with self.datastore.get_connection(commit=True) as connection:
            raw = self._connection(connection)
            with connection.transaction(commit=True) as cursor:
                for projection, tables in self._tables:
                    projection.apply([event], raw, tables)
                self._insert_tracking(cursor, tracking)
        if tracking.notification_id >= type(self).last_id:
            type(self).finished_at = time.perf_counter()
            type(self).finished.set()


class PlayerlogProjection(LibraryProjection[PlayerlogViews]):
    name = "playerlog_views"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.fold(domain_event.record, tracking)


# -- one measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerRun:
    events: int
    seconds: float


def run_peer(
    source: Path,
    views: Path,
    projections: Sequence[Projection],
    events: int,
    *,
    timeout: float,
) -> PeerRun:
    """Fold the `events` stored events at `source` into a fresh view file at `views`
    with the library's ProjectionRunner; seconds from starting the runner to the
    commit of the last event."""
    for leftover in (views, *(views.with_name(views.name + s) for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)

    class RunViews(PlayerlogViews):
        folds = tuple(projections)
        last_id = events
        finished = threading.Event()

    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(source),
        "APPLICATION_RECORDER_TOPIC": f"{__name__}:PollingSQLiteApplicationRecorder",
        # The view lives in its own file (env keys prefixed with the projection's name).
        f"{PlayerlogProjection.name.upper()}_SQLITE_DBNAME": str(views),
    }
    began = time.perf_counter()
    runner = LibraryRunner(
        application_class=LogCopy,
        projection_class=PlayerlogProjection,
        view_class=RunViews,
        env=env,
    )
    with runner:
        deadline = began + timeout
        while not RunViews.finished.wait(0.2):
            if runner.is_interrupted.is_set():
                runner.run_forever(timeout=0)  # re-raises the processing thread's error
                raise RuntimeError("the peer's runner stopped before the last event")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the peer took over {timeout:.0f} s")
        seconds = RunViews.finished_at - began
        tracked = runner.view.max_tracking_id(APP_NAME)
    if tracked != events:
        raise RuntimeError(f"the peer's tracking says {tracked}, expected {events}")
    return PeerRun(events=events, seconds=seconds)
