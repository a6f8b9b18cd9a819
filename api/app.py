"""The composition root: `create_app(settings)` wires everything together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.access import AccessLog
from api.ingestion import IngestService
from api.logs import configure_logging
from api.metrics import Metrics
from api.openapi import document_bodies
from api.projections_service import ProjectionsService
from api.ratelimit import TokenBuckets
from api.replay import IdempotencyKeys
from api.responses import EXCEPTION_HANDLERS
from api.routes_admin import ADMIN_ROUTES
from api.routes_ingest import identify_player, track_events, unified_events
from api.routes_ops import OPS_ROUTES
from api.routes_projections import PROJECTION_ROUTES, document_projection_routes
from api.routes_read import READ_ROUTES, document_read_routes
from api.services import Services
from api.settings import Settings
from api.tenants import TenantSettingsStore
from api.tokens import TokenService
from delivery import DeliveryRunner, load_destinations_file
from delivery.routes import DESTINATION_ROUTES, document_destination_routes
from eventstore import EventLog, open_log
from projections import Projection
from projections.standard import projections_for
from projections.worker import ProjectionWorker, runner_lock_for

__all__ = ["create_app", "create_asgi"]


def build_services(
    settings: Settings,
    log: EventLog | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    projections: Callable[[], Sequence[Projection]] | None = None,
) -> Services:
    views = settings.views_location()  # before opening anything: a bad one is refused first
    if settings.destinations:
        load_destinations_file(settings.destinations)  # a bad file: refused at start, with why
    log = log or open_log(
        settings.db_url,
        max_pending_events=settings.writer_max_pending_events,
        idempotency_ttl=settings.idempotency_ttl,
    )
    metrics = Metrics(queue_depth=lambda: float(log.pending_events))
    tenants = TenantSettingsStore(log, settings.default_catalogue_mode)
    limiter = None
    if settings.rate_limit_per_second > 0:
        burst = settings.rate_limit_burst or max(1.0, settings.rate_limit_per_second)
        limiter = TokenBuckets(settings.rate_limit_per_second, burst)
    return Services(
        settings=settings,
        log=log,
        tokens=TokenService(log, clock=clock),
        tenants=tenants,
        ingest=IngestService(log, tenants, metrics, clock),
        keys=IdempotencyKeys(log),
        metrics=metrics,
        limiter=limiter,
        projections=ProjectionsService(
            log,
            views,
            # which process drives: a file lock beside SQLite views, an advisory lock
            # on PostgreSQL (projections.runner_lock)
            runner_lock=runner_lock_for(views),
            make_projections=projections or projections_for(settings.eur_rates),
            wait_timeout=settings.min_position_timeout,
        ),
    )


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
) -> Litestar:
    """The Litestar app. Pass `services` to share them (tests, the CLI), or let the
    app open the log from `settings.db_url` and close it on shutdown.

    With `run_projections` on, the app drives the projections while it runs (or
    stands by while another process does: `projections.worker`); the runner is
    stopped, after the page under way, before the log closes.
    """
    settings = settings or (services.settings if services else Settings.from_env())
    configure_logging(settings.log_level)
    owned = services is None
    services = services or build_services(settings)
    worker = None
    if settings.run_projections:
        delivery = DeliveryRunner(services.log, destinations_file=settings.destinations)
        worker = ProjectionWorker(
            services.log,
            services.projections.make_projections(),
            views=services.projections.views,
            # its own lock object: two apps sharing services must not share a holding
            lock=runner_lock_for(services.projections.views),
            lock_poll=settings.runner_lock_poll,
            companions=[delivery.run],
            runner_options=settings.driving_options(),
        )

    async def start_projections() -> None:
        if worker is not None:
            await worker.start()

    async def stop_projections() -> None:
        if worker is not None:
            await worker.stop()

    def close_services() -> None:
        if owned:
            services.close()

    app = Litestar(
        route_handlers=[
            track_events, identify_player, unified_events, *ADMIN_ROUTES, *OPS_ROUTES,
            *PROJECTION_ROUTES, *READ_ROUTES, *DESTINATION_ROUTES,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        on_startup=[start_projections],
        on_shutdown=[stop_projections, close_services],
        openapi_config=OpenAPIConfig(
            title="playerlog",
            version="0.1.0",
            description=(
                "Event tracking (Player Platform API), the unified vendor endpoint, "
                "and the admin API. Authenticate with `Authorization: Bearer <token>`; "
                "the unified endpoint also takes `x-api-key`."
            ),
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer"),
                    "apiKey": SecurityScheme(
                        type="apiKey", name="x-api-key", security_scheme_in="header"
                    ),
                }
            ),
            security=[{"bearer": []}],
        ),
        debug=False,
    )
    app.state.services = services
    app.state.projection_worker = worker
    document_bodies(app)
    document_projection_routes(app)
    document_read_routes(app)
    document_destination_routes(app)
    return app


def create_asgi(settings: Settings | None = None, *, services: Services | None = None) -> Any:
    """The app wrapped in the access log: what `playerlog serve` runs."""
    app = create_app(settings, services=services)
    services = app.state.services
    return AccessLog(app, services.metrics, enabled=services.settings.access_log)
