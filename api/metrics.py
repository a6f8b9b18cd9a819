"""Prometheus metrics, one registry per app (tests build many apps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "playerlog_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "playerlog_events",
            "Events by source and outcome (accepted, rejected, duplicate, conflict).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.catalogue_violations = Counter(
            "playerlog_catalogue_violations",
            "Catalogue findings in warn mode, by code.",
            ["code"],
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "playerlog_append_seconds",
            "Time from handing events to the log to their durable commit.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "playerlog_writer_queue_events",
            "Events waiting for the log writer.",
            registry=self.registry,
        )
        self.queue_depth.set_function(queue_depth)
        # `labels()` checks and joins its arguments and takes a lock on every call (a few
        # of them per request); the labelled children never change, so they are kept.
        # These caches hold only children the registry holds already.
        self._events: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    def count_events(self, source: str, outcome: str, n: int) -> None:
        if n:
            child = self._events.get((source, outcome))
            if child is None:
                child = self._events[source, outcome] = self.events.labels(source, outcome)
            child.inc(n)

    def count_request(self, method: str, route: str, status: int) -> None:
        child = self._requests.get((method, route, status))
        if child is None:
            child = self._requests[method, route, status] = self.requests.labels(
                method, route, str(status)
            )
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
