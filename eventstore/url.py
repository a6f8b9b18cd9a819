"""Open a log from one database URL (`--db` / `PLAYERLOG_DB`)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

from eventstore.backend import LogBackend
from eventstore.errors import UnsupportedDatabaseURL

__all__ = ["DEFAULT_DB_URL", "open_backend", "resolve_db_url"]

DEFAULT_DB_URL = "sqlite:///playerlog.db"
"""`./playerlog.db`, relative to the working directory."""


def resolve_db_url(explicit: str | None = None) -> str:
    """`--db` if given, else `PLAYERLOG_DB`, else the default SQLite file."""
    return explicit or os.environ.get("PLAYERLOG_DB") or DEFAULT_DB_URL


def open_backend(url: str, **options: Any) -> LogBackend:
    """A migrated backend for `url`.

    * `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`; query option
      `synchronous=FULL|NORMAL|OFF` (default FULL: see docs/durability.md);
      `tail_limit=N`, `merge_fan_in=N`, `merge_slice=N`, `merge_levels=N`,
      `key_filter=off` tune the dedup index
      (docs/log.md).
    * `postgresql://user@host:port/dbname` (also `postgres://`).
    """
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "sqlite":
        from eventstore.sqlite_log import SQLiteLog  # noqa: PLC0415  (import only the backend used)

        path = url.split("://", 1)[1].split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise UnsupportedDatabaseURL(f"{url!r}: a SQLite URL needs a file path")
        synchronous = query.get("synchronous", "FULL").upper()
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise UnsupportedDatabaseURL(f"{url!r}: synchronous must be FULL, NORMAL or OFF")
        for knob in ("tail_limit", "merge_fan_in", "merge_slice", "merge_levels"):
            if knob in query:
                try:
                    options.setdefault(knob, int(query[knob]))
                except ValueError:
                    raise UnsupportedDatabaseURL(f"{url!r}: {knob} must be an integer") from None
        if "key_filter" in query:
            options.setdefault("key_filter", query["key_filter"].lower() in ("1", "on", "true"))
        backend: LogBackend = SQLiteLog(path, synchronous=synchronous, **options)  # type: ignore[arg-type]
    elif parts.scheme in ("postgresql", "postgres"):
        from eventstore.postgres_log import PostgresLog  # noqa: PLC0415

        backend = PostgresLog.from_url(url, **options)
    else:
        raise UnsupportedDatabaseURL(
            f"{url!r}: the database URL must start with sqlite:/// or postgresql://"
        )
    backend.migrate()
    return backend
