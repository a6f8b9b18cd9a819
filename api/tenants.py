"""Per-tenant settings (the event catalogue mode), kept as records beside the log."""

from __future__ import annotations

import time

import msgspec

from api.settings import CatalogueMode
from eventstore import EventLog

__all__ = ["TenantSettings", "TenantSettingsStore"]

_KIND = "tenant"


class TenantSettings(msgspec.Struct, frozen=True):
    catalogue_mode: CatalogueMode = "warn"


class TenantSettingsStore:
    """Cached for a few seconds: read on every track request."""

    def __init__(self, log: EventLog, default_mode: CatalogueMode, cache_seconds: float = 5.0):
        self._log = log
        self._default = TenantSettings(catalogue_mode=default_mode)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TenantSettings]] = {}

    def get(self, tenant: str) -> TenantSettings:
        now = time.monotonic()
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = self._log.get_record(_KIND, tenant)
        found = self._default if value is None else msgspec.json.decode(value, type=TenantSettings)
        self._cache[tenant] = (now + self._cache_seconds, found)
        return found

    def put(self, tenant: str, settings: TenantSettings) -> None:
        self._log.put_record(_KIND, tenant, msgspec.json.encode(settings))
        self._cache.pop(tenant, None)
