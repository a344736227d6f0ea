"""The application: composes the API (billing/api) and the pages (billing/web) into one FastAPI
app, with the error handlers, middleware, static files, the catalogue and the background jobs.
Neither the API nor the pages know about each other; both call the same services."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from billing import __version__
from billing.api.routes import (
    alerts,
    caps,
    commitments,
    customers,
    events,
    health,
    invoices,
    pricing,
    reports,
    stripe_webhook,
    webhook_endpoints,
)
from billing.auth.cache import KeyCache
from billing.catalog import Catalog, load_catalog
from billing.db import make_engine
from billing.http import errors
from billing.http.replica import ReadEngines
from billing.jobs import scheduler
from billing.metering.limited import LimitedList
from billing.metering.writer import IngestWriter
from billing.observability.http import RequestContext
from billing.observability.ratelimit import RateLimiter
from billing.settings import Settings, get_settings
from billing.sqlite_wal import WalCheckpointer, uses_wal_file
from billing.web import finance, pages, portal, portal_webhooks, signin_pages

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"
# Swagger UI and ReDoc as installed with the fastapi-offline package: /docs and /redoc work
# without reaching a CDN (an air-gapped install, a laptop offline).
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


# The docs pages may load nothing from another host (ReDoc's bundle links a logo on its CDN).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'"
)


def _api_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc), their scripts and styles served from
    /static/docs; nothing is fetched from another host (no fonts, no favicon, and a
    Content-Security-Policy that keeps every request on this host)."""
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="data:,",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title=title,
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="data:,",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


# The cyclic garbage collector's generation-0 threshold in a served process (CPython's
# default is 700). A batch of 10,000 events allocates a few hundred thousand objects, nearly
# all freed by reference counting; at 700 the collector ran hundreds of times per batch and
# rescanned the live batch each time (docs/benchmarks.md, "Dimensions").
SERVED_GC_THRESHOLD = 10_000


def create_served_app() -> FastAPI:
    """The app as `billing serve` runs it, in each worker process: `create_app()` with the
    garbage collector tuned for the process (SERVED_GC_THRESHOLD, and the objects alive
    after start-up frozen out of its scans, `gc.freeze`). Tests and embedders that call
    `create_app` keep their process's settings."""
    app = create_app()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVED_GC_THRESHOLD, older, oldest)
    return app


def create_app(
    settings: Settings | None = None, catalog: Catalog | None = None, engine: Engine | None = None
) -> FastAPI:
    """Build the app; raises CatalogError when the tier directory is invalid."""
    settings = settings or get_settings()
    catalog = catalog or load_catalog(settings.tiers_dir)
    engine = engine or make_engine(settings.database_url)
    writer = IngestWriter(engine, catalog, writers=settings.ingest_writers)
    reads = ReadEngines.from_settings(engine, settings)  # the read replica, when configured
    checkpointer = (
        WalCheckpointer(engine, settings.sqlite_checkpoint_seconds)
        if settings.sqlite_checkpoint_seconds and uses_wal_file(engine)
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        jobs = scheduler.start(engine, catalog, settings) if settings.scheduler else None
        if checkpointer is not None:
            checkpointer.start()
        yield
        app.state.draining = True  # /readyz answers 503 from now on
        if jobs is not None:
            jobs.shutdown(wait=False)  # a job cut off rolls back; its next run resumes it
        writer.stop()  # answer what is queued before the process exits
        if checkpointer is not None:
            checkpointer.stop()
        reads.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="Billing",
        version=__version__,
        description="Usage-based billing and pricing engine. Money is sent as strings.",
        docs_url=None,  # served below from the installed assets, not a CDN
        redoc_url=None,
    )
    app.state.catalog = catalog
    app.state.settings = settings
    app.state.engine = engine
    app.state.reads = reads
    app.state.ingest_writer = writer
    app.state.wal_checkpointer = checkpointer
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    app.state.limited_list = LimitedList(engine, settings.quota_cache_seconds)
    app.state.quote_limiter = RateLimiter(settings.quote_rate_per_minute)
    app.state.signin_limiter = RateLimiter(settings.signin_rate_per_minute)
    app.state.draining = False
    errors.install(app, page_not_found=pages.not_found_page)
    app.include_router(health.router)
    app.include_router(pricing.router)
    app.include_router(customers.router)
    app.include_router(events.router)
    app.include_router(caps.router)
    app.include_router(alerts.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(commitments.router)
    app.include_router(invoices.router)
    app.include_router(stripe_webhook.router)
    app.include_router(reports.router)
    app.include_router(pages.router)
    signin_pages.install(app)
    app.include_router(signin_pages.router)
    app.include_router(portal.router)
    app.include_router(portal_webhooks.router)
    app.include_router(finance.router)
    _api_docs(app)
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.cors_origins:  # closed unless origins are named
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        RequestContext,
        default_limit=settings.max_body_bytes,
        limits={"/v1/events": events.BODY_LIMIT},  # its own 5 MB, whatever the default
    )
    return app
