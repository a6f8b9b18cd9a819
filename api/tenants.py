"""Per-tenant settings (the event catalogue mode), kept as records beside the log.

Settings belong to a tenant *and* an environment, like everything else a token
touches: an admin token of staging (where strict mode is tried first) must not
change how live traffic is validated. They used to be keyed by tenant alone.
"""

from __future__ import annotations

import time

import msgspec

from api.settings import CatalogueMode
from eventstore import EventLog

__all__ = ["TenantSettings", "TenantSettingsStore"]

_KIND = "tenant"


class TenantSettings(msgspec.Struct, frozen=True):
    catalogue_mode: CatalogueMode = "warn"


def _key(tenant: str, environment: str) -> str:
    return f"{tenant}\x1f{environment}"


class TenantSettingsStore:
    """Cached for a few seconds: read on every track request."""

    def __init__(self, log: EventLog, default_mode: CatalogueMode, cache_seconds: float = 5.0):
        self._log = log
        self._default = TenantSettings(catalogue_mode=default_mode)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TenantSettings]] = {}

    def get(self, tenant: str, environment: str) -> TenantSettings:
        key = _key(tenant, environment)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = self._log.get_record(_KIND, key)
        found = self._default if value is None else msgspec.json.decode(value, type=TenantSettings)
        self._cache[key] = (now + self._cache_seconds, found)
        return found

    def put(self, tenant: str, environment: str, settings: TenantSettings) -> None:
        key = _key(tenant, environment)
        self._log.put_record(_KIND, key, msgspec.json.encode(settings))
        self._cache.pop(key, None)
