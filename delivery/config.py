"""What a destination is: its settings, validated, and the file they can come from.

A destination belongs to one tenant and one environment, like every token and
read-model row: delivery reads only that tenant's events of that environment.
Durations are seconds (a number) or text such as `250ms`, `30s`, `5m`, `1h`, `2d`;
they are stored as seconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

__all__ = [
    "ENVIRONMENTS",
    "SOURCES",
    "Destination",
    "DestinationError",
    "NatsSettings",
    "RetrySettings",
    "WebhookSettings",
    "decode_destination",
    "load_destinations_file",
    "parse_seconds",
]

Kind = Literal["webhook", "nats"]
Source = Literal["track", "identify", "unified"]
Start = Literal["beginning", "end"]

ENVIRONMENTS = ("live", "staging")
SOURCES: tuple[Source, ...] = ("track", "identify", "unified")
MAX_BATCH_SIZE = 1000
MIN_SECRET_LENGTH = 16
MAX_IN_FLIGHT = 1000

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# What NATS forbids inside a subject token; `.` separates tokens.
_SUBJECT_FORBIDDEN = re.compile(r"[\s*>\x00-\x1f\x7f]")
_STREAM_FORBIDDEN = re.compile(r"[\s.*>/\\\x00-\x1f\x7f]")


class DestinationError(ValueError):
    """A destination's settings are invalid; the message names the field."""


def parse_seconds(field: str, value: float | str) -> float:
    """A duration as seconds: a number, or text such as `250ms`, `30s`, `5m`, `1h`, `2d`."""
    if isinstance(value, bool):
        raise TypeError(f"{field}: expected seconds or a duration such as 30s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError(
                f"{field}: {value!r} is not a duration; use seconds or e.g. 250ms, 30s, 5m, 1h"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{field}: must be a positive duration, got {value!r}")
    return seconds


class RetrySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Exponential backoff with full jitter: before retry n, wait a random time
    between 0 and min(max_backoff, initial_backoff * 2**(n-1)); a batch still
    failing `dead_letter_after` its first failure goes to the dead-letter list."""

    initial_backoff: float | str = 1.0
    max_backoff: float | str = 300.0
    dead_letter_after: float | str = 3600.0

    def __post_init__(self) -> None:
        self.initial_backoff = parse_seconds("initial_backoff", self.initial_backoff)
        self.max_backoff = parse_seconds("max_backoff", self.max_backoff)
        self.dead_letter_after = parse_seconds("dead_letter_after", self.dead_letter_after)
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff:g}s) must not be below "
                f"initial_backoff ({self.initial_backoff:g}s)"
            )

    def seconds(self) -> tuple[float, float, float]:
        """(initial_backoff, max_backoff, dead_letter_after) in seconds."""
        return (
            float(self.initial_backoff),
            float(self.max_backoff),
            float(self.dead_letter_after),
        )


class WebhookSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    secret: str
    """Shared with the receiver, which checks each request's HMAC-SHA256 signature."""
    timeout: float | str = 10.0
    """Seconds for one request (connect, send, answer); past it the batch is retried."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: must be an http:// or https:// URL, got {self.url!r}")
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"secret: must be at least {MIN_SECRET_LENGTH} characters "
                "(a random one: `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        self.timeout = parse_seconds("timeout", self.timeout)


class NatsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    servers: str | list[str]
    """e.g. `nats://127.0.0.1:4222`, or several URLs of one cluster."""
    subject_prefix: str = "playerlog"
    """Subjects are `<subject_prefix>.<tenant>.<event type>`."""
    stream: str | None = None
    """The JetStream stream that captures `<subject_prefix>.>`; needed by `create_stream`."""
    create_stream: bool = False
    """Create the stream (file storage) when it does not exist."""
    duplicate_window: float | str = 120.0
    """JetStream's dedup window for a stream created here (seconds or e.g. `2m`)."""
    ack_timeout: float | str = 5.0
    """Seconds to wait for the server's publish acknowledgement before retrying."""
    max_in_flight: int = 64
    """Publishes awaiting their acknowledgement at once, each of a different player
    (a player's next message waits for the previous one's). 1 publishes one message
    at a time: strict log order across players too."""

    def __post_init__(self) -> None:
        servers = [self.servers] if isinstance(self.servers, str) else self.servers
        if not servers:
            raise ValueError("servers: give at least one NATS server URL")
        for server in servers:
            parts = urlsplit(server)
            if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
                raise ValueError(f"servers: {server!r} is not a nats:// or tls:// URL")
        self.servers = servers
        tokens = self.subject_prefix.split(".")
        if not all(tokens) or any(_SUBJECT_FORBIDDEN.search(t) for t in tokens):
            raise ValueError(
                f"subject_prefix: {self.subject_prefix!r} must be dot-separated non-empty "
                "tokens without spaces, `*` or `>`"
            )
        if self.stream is not None and (not self.stream or _STREAM_FORBIDDEN.search(self.stream)):
            raise ValueError(
                f"stream: {self.stream!r} must be non-empty, without spaces, `.`, `*`, `>`, `/`"
            )
        if self.create_stream and self.stream is None:
            raise ValueError("stream: create_stream needs the stream's name")
        self.duplicate_window = parse_seconds("duplicate_window", self.duplicate_window)
        self.ack_timeout = parse_seconds("ack_timeout", self.ack_timeout)
        if isinstance(self.max_in_flight, bool) or not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(
                f"max_in_flight: must be 1 to {MAX_IN_FLIGHT}, got {self.max_in_flight!r}"
            )

    def server_list(self) -> list[str]:
        return [self.servers] if isinstance(self.servers, str) else list(self.servers)


class Destination(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One downstream destination of one tenant's events in one environment."""

    name: str
    tenant: str
    environment: str
    kind: Kind
    webhook: WebhookSettings | None = None
    nats: NatsSettings | None = None
    sources: list[Source] = msgspec.field(default_factory=list)
    """Only events that came in through these endpoints; empty: all."""
    types: list[str] = msgspec.field(default_factory=list)
    """Only these event types; empty: all."""
    batch_size: int = 100
    """Events at most in one webhook request (one log page read per batch)."""
    retry: RetrySettings = msgspec.field(default_factory=RetrySettings)
    start: Start = "beginning"
    """Where a new destination starts: the tenant's first event, or the log's end."""
    enabled: bool = True

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"name: {self.name!r} must be 1-64 of a-z, 0-9, `_` and `-`, "
                "starting with a letter or digit"
            )
        if not self.tenant or _SUBJECT_FORBIDDEN.search(self.tenant) or "\x1f" in self.tenant:
            raise ValueError(f"tenant: {self.tenant!r} must be a non-empty name without spaces")
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"environment: {self.environment!r} must be live or staging")
        settings = {"webhook": self.webhook, "nats": self.nats}
        if settings[self.kind] is None:
            raise ValueError(
                f"{self.kind}: a {self.kind} destination needs its `{self.kind}` settings"
            )
        other = "nats" if self.kind == "webhook" else "webhook"
        if settings[other] is not None:
            raise ValueError(f"{other}: not allowed on a {self.kind} destination")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size: must be 1 to {MAX_BATCH_SIZE}, got {self.batch_size}")
        if any(not t or t != t.strip() for t in self.types):
            raise ValueError("types: event types must be non-empty and without spaces around them")
        if len(set(self.types)) != len(self.types) or len(set(self.sources)) != len(self.sources):
            raise ValueError("types/sources: list each value once")

    @property
    def key(self) -> str:
        return destination_key(self.tenant, self.environment, self.name)

    def wants_source(self, source: str) -> bool:
        return not self.sources or source in self.sources


def destination_key(tenant: str, environment: str, name: str) -> str:
    """The destination's key among the log's named records."""
    return f"{tenant}\x1f{environment}\x1f{name}"


class _File(msgspec.Struct, forbid_unknown_fields=True):
    destinations: list[Destination] = msgspec.field(default_factory=list)


_CHOICES = {
    "kind": "webhook or nats",
    "sources": "track, identify or unified",
    "start": "beginning or end",
}
_ENUM_AT = re.compile(r"^Invalid enum value (?P<value>.*) - at `(?P<path>[^`]*)`$")


def _problem(error: msgspec.ValidationError | msgspec.DecodeError) -> str:
    # msgspec's text ends in "- at `$.destinations[0].webhook`", which names the field;
    # for a value outside a fixed set it does not say which values are allowed.
    text = str(error)
    found = _ENUM_AT.match(text)
    if found:
        field = re.sub(r"\[\d+\]$", "", found.group("path")).rsplit(".", 1)[-1]
        if field in _CHOICES:
            return (
                f"{field}: {found.group('value')} is not one of {_CHOICES[field]} "
                f"- at `{found.group('path')}`"
            )
    return text


def decode_destination(data: bytes | str) -> Destination:
    """One destination from JSON; raises DestinationError naming the field."""
    try:
        return msgspec.json.decode(data, type=Destination)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise DestinationError(_problem(error)) from None


def load_destinations_file(path: str | Path) -> list[Destination]:
    """Destinations from a TOML (`.toml`) or JSON file with a `destinations` list.

    Raises DestinationError naming the file and the field; a name used twice for
    one tenant and environment is refused.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DestinationError(f"{path}: cannot read ({error.strerror})") from None
    try:
        if path.suffix.lower() == ".toml":
            loaded = msgspec.toml.decode(data, type=_File)
        elif path.suffix.lower() == ".json":
            loaded = msgspec.json.decode(data, type=_File)
        else:
            raise DestinationError(f"{path}: use a .toml or .json file")
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise DestinationError(f"{path}: {_problem(error)}") from None
    seen: set[str] = set()
    for destination in loaded.destinations:
        if destination.key in seen:
            raise DestinationError(
                f"{path}: destination {destination.name!r} of {destination.tenant}/"
                f"{destination.environment} is defined twice"
            )
        seen.add(destination.key)
    return loaded.destinations
