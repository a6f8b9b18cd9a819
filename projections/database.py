"""The read-model database: its own SQLite file beside the log.

Read models never share the log's file: SQLite has one write lock per file, and
projection writes (a page at a time, as fast as the disk takes them during a
rebuild) would otherwise stall appends. The file is derived from the log URL
(`sqlite:///x/playerlog.db` → `x/playerlog.views.db`) unless given explicitly.

Durability: WAL with `synchronous=NORMAL` by default. A power loss may take the
last few committed pages with it, but never corrupts the file, and the page and
its checkpoint always vanish together, so the runner simply re-applies them from
the log on restart. The log (FULL by default) is the truth; the views are
rebuildable from it, so paying an fsync per page buys nothing a restart does not
already give. Pass `synchronous="FULL"` to trade that speed for not re-applying.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

__all__ = ["Synchronous", "open_views", "read_transaction", "views_path_for", "write_transaction"]

Synchronous = Literal["NORMAL", "FULL"]

VIEWS_SUFFIX = ".views.db"


def views_path_for(log_url: str) -> Path:
    """Where the read models of the log at `log_url` live by default.

    `sqlite:///x/playerlog.db` → `x/playerlog.views.db`; a name without `.db`
    gets `.views.db` appended. A PostgreSQL log needs an explicit path (for now).
    """
    scheme, _, rest = log_url.partition("://")
    if scheme != "sqlite":
        raise ValueError(
            f"{log_url!r}: read models are derived from a sqlite:/// log URL only; "
            "pass the views path explicitly"
        )
    path = rest.split("?", 1)[0]
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ValueError(f"{log_url!r}: an in-memory log has no file to put read models beside")
    log_file = Path(path)
    stem = log_file.name[:-3] if log_file.name.endswith(".db") else log_file.name
    return log_file.with_name(stem + VIEWS_SUFFIX)


def open_views(
    path: str | Path, *, synchronous: Synchronous = "NORMAL", busy_timeout_s: float = 30.0
) -> sqlite3.Connection:
    """A connection to the read-model database (created if missing), in WAL mode.

    Autocommit mode (`isolation_level=None`): writers open their own
    `BEGIN IMMEDIATE` with `write_transaction`. Usable from any thread, one at a
    time. The projection registry is created on first use.
    """
    from projections.registry import ensure_registry  # noqa: PLC0415  (registry imports this module)

    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError("synchronous must be NORMAL or FULL")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path),
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout_s,
        cached_statements=256,
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    ensure_registry(conn)
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` … `COMMIT`; rolled back on any exception (also BaseException)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.commit()


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One snapshot for several SELECTs (WAL: never blocks the writer)."""
    mine = not conn.in_transaction  # inside someone's transaction: share its snapshot
    if mine:
        conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if mine and conn.in_transaction:
            conn.rollback()
