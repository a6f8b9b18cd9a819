"""Everything the app is configured with, in one place (the composition root reads it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from eventstore import DEFAULT_IDEMPOTENCY_TTL, resolve_db_url
from projections.database import ViewsLocation, views_location_for

__all__ = ["Settings"]

CatalogueMode = Literal["off", "warn", "strict"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    db_url: str = "sqlite:///playerlog.db"
    host: str = "127.0.0.1"
    port: int = 8001
    workers: int = 1
    max_body_bytes: int = 5 * 1024 * 1024
    """Request bodies above this get 413 (default 5 MB)."""
    idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL
    rate_limit_per_second: float = 0.0
    """Per-token token bucket; 0 turns rate limiting off (the default)."""
    rate_limit_burst: float = 0.0
    """Bucket size; 0 means one second's worth of requests."""
    writer_max_pending_events: int = 200_000
    """Events queued for the log writer before appends get 503 + Retry-After."""
    default_catalogue_mode: CatalogueMode = "warn"
    log_level: str = "INFO"
    access_log: bool = True
    views: str | None = None
    """Where the read models live: a SQLite file or a `postgresql://` URL (its
    `?schema=`). None: beside a SQLite log (`x/playerlog.views.db`), or a
    PostgreSQL log's own database and schema."""
    destinations: str | None = None
    """A destinations file (docs/destinations.md) applied at start; destinations
    made over the admin API need none."""
    eur_rates: str | None = None
    """A CSV file of dated EUR rates (docs/money.md); None: only EUR amounts and
    events carrying `amount_eur` convert, the rest are reported as unconverted."""
    run_projections: bool = True
    """Drive the projections in this process (one process at a time drives them;
    the others stand by). False: an API-only process (`serve --no-projections`)."""
    runner_lock_poll: float = 1.0
    """Seconds between a standby's tries for the runner lock (the longest takeover)."""
    min_position_timeout: float = 5.0
    """How long a read with `?min_position=N` waits for the projection to reach N."""
    projection_buffer_keys: int | None = None
    """Keys a build catching up holds in memory before it flushes (the runner's
    `max_buffered_keys`; None: its default). The memory bound of a rebuild."""
    projection_processes: int | None = None
    """Helper processes the runner may start for projections far behind (None:
    one a core; 1: none, everything in the driving process)."""

    def __post_init__(self) -> None:
        for name, value in (
            ("PLAYERLOG_PROJECTION_BUFFER_KEYS", self.projection_buffer_keys),
            ("PLAYERLOG_PROJECTION_PROCESSES", self.projection_processes),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name}={value}: must be at least 1")

    def runner_options(self) -> dict[str, int]:
        """The `ProjectionRunner` keywords these settings set (the rest: its defaults;
        callers add `log_url`, see `driving_options`)."""
        options = {
            "max_buffered_keys": self.projection_buffer_keys,
            "processes": self.projection_processes,
        }
        return {name: value for name, value in options.items() if value is not None}

    def driving_options(self) -> dict[str, str | int]:
        """`runner_options` and the log's URL as given (with any password), which the
        runner's helper processes open the log by: what serve, worker and
        `projections rebuild` pass to the runner."""
        return {"log_url": self.db_url, **self.runner_options()}

    def views_location(self) -> ViewsLocation:
        """`views` if set, else derived from `db_url` (`database.views_location_for`)."""
        if self.views:
            if "://" not in self.views:
                return Path(self.views)
            if not self.views.startswith(("postgresql://", "postgres://")):
                raise ValueError(
                    f"PLAYERLOG_VIEWS (--views) {self.views.split('@')[-1]!r}: "
                    "a SQLite file path or a postgresql:// URL"
                )
            return self.views
        try:
            return views_location_for(self.db_url)
        except ValueError as problem:
            raise ValueError(f"PLAYERLOG_VIEWS (--views) is needed: {problem}") from None

    @classmethod
    def from_env(cls, db: str | None = None, **overrides: object) -> Settings:
        """Settings from PLAYERLOG_* environment variables, then explicit overrides."""
        env = os.environ
        values: dict[str, object] = {"db_url": resolve_db_url(db)}
        numeric = {
            "PLAYERLOG_MAX_BODY_BYTES": ("max_body_bytes", int),
            "PLAYERLOG_IDEMPOTENCY_TTL": ("idempotency_ttl", float),
            "PLAYERLOG_RATE_LIMIT": ("rate_limit_per_second", float),
            "PLAYERLOG_RATE_LIMIT_BURST": ("rate_limit_burst", float),
            "PLAYERLOG_WRITER_MAX_PENDING": ("writer_max_pending_events", int),
            "PLAYERLOG_RUNNER_LOCK_POLL": ("runner_lock_poll", float),
            "PLAYERLOG_MIN_POSITION_TIMEOUT": ("min_position_timeout", float),
            "PLAYERLOG_PROJECTION_BUFFER_KEYS": ("projection_buffer_keys", int),
            "PLAYERLOG_PROJECTION_PROCESSES": ("projection_processes", int),
        }
        for name, (field, kind) in numeric.items():
            if name in env:
                try:
                    values[field] = kind(env[name])
                except ValueError:
                    raise ValueError(
                        f"{name}={env[name]!r}: expected a {'whole ' if kind is int else ''}number"
                    ) from None
        if "PLAYERLOG_CATALOGUE_MODE" in env:
            values["default_catalogue_mode"] = env["PLAYERLOG_CATALOGUE_MODE"]
        if "PLAYERLOG_LOG_LEVEL" in env:
            values["log_level"] = env["PLAYERLOG_LOG_LEVEL"]
        if env.get("PLAYERLOG_ACCESS_LOG", "1") in ("0", "false", "no"):
            values["access_log"] = False
        if env.get("PLAYERLOG_VIEWS"):
            values["views"] = env["PLAYERLOG_VIEWS"]
        if env.get("PLAYERLOG_DESTINATIONS"):
            values["destinations"] = env["PLAYERLOG_DESTINATIONS"]
        if env.get("PLAYERLOG_EUR_RATES"):
            values["eur_rates"] = env["PLAYERLOG_EUR_RATES"]
        if env.get("PLAYERLOG_PROJECTIONS", "1") in ("0", "false", "no"):
            values["run_projections"] = False
        values.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(values, cls)
