"""The cluster tests use the log tests' PostgreSQL fixtures and the delivery tests'
NATS fixture (each fails instead of skipping under CI=true)."""

from tests.delivery.conftest import nats_url
from tests.eventstore.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["nats_url", "pg_base_url", "pg_schema", "pg_url"]
