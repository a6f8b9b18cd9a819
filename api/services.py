"""The services one app uses, built once by the composition root (`create_app`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import msgspec

from api.ingestion import IngestService
from api.metrics import Metrics
from api.projections_service import ProjectionsService
from api.ratelimit import TokenBuckets
from api.replay import IdempotencyKeys
from api.settings import Settings
from api.tenants import TenantSettingsStore
from api.tokens import TokenService
from eventstore import EventLog

__all__ = ["CatalogueFinding", "Services"]


class CatalogueFinding(msgspec.Struct, frozen=True):
    tenant: str
    environment: str
    event_id: str
    event_name: str
    code: str
    message: str


@dataclass
class Services:
    settings: Settings
    log: EventLog
    tokens: TokenService
    tenants: TenantSettingsStore
    ingest: IngestService
    keys: IdempotencyKeys
    metrics: Metrics
    limiter: TokenBuckets | None
    projections: ProjectionsService
    findings: deque[CatalogueFinding] = field(default_factory=lambda: deque(maxlen=1000))
    """The latest catalogue findings (warn mode) in this process, for operators."""

    def close(self) -> None:
        """Close the read-model connections, then the log."""
        try:
            self.projections.close()
        finally:
            self.log.close()
