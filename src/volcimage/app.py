"""create_app(settings): routers, error shapes, static page, and the lifespan (runner, bus)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from volcimage import __version__
from volcimage.assemble import build_runner, build_state, start_retention
from volcimage.audit.log import router as audit_router
from volcimage.auth.access import AccessControl
from volcimage.core.config import Settings, get_settings
from volcimage.core.errors import VolcImageError, answer, invalid_input
from volcimage.core.migrate import migrate
from volcimage.events.relay import start_relay
from volcimage.http.bodies import BodyLimit
from volcimage.http.docs import install_docs
from volcimage.http.headers import SecurityHeaders
from volcimage.http.metrics import RequestMetrics
from volcimage.http.outages import Outages
from volcimage.images.routes import router as images_router
from volcimage.presets.routes import router as templates_router
from volcimage.system.probes import Probes
from volcimage.system.routes import metrics_router
from volcimage.system.routes import router as system_router
from volcimage.tasks import reads
from volcimage.tasks.routes import router as tasks_router
from volcimage.tasks.streams import router as streams_router
from volcimage.users.routes import router as users_router
from volcimage.users.routes import sign_in_router

log = logging.getLogger("volcimage.app")
STATIC_DIR = files("volcimage") / "web" / "static"


def create_app(settings: Settings | None = None, *, run_tasks: bool = True) -> FastAPI:
    settings = settings or get_settings()
    state = build_state(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, settings)
        relay = await start_relay(
            settings.DATABASE_URL, state.bus, state.sessionmaker, reads.event_of_note
        )
        stop = asyncio.Event()
        runner_job: asyncio.Task[None] | None = None
        retention, retention_job = start_retention(state, stop)
        runner = build_runner(state, retention) if run_tasks else None
        if runner is not None:
            runner_job = asyncio.create_task(runner.run(stop), name="runner")
        log.info("volcimage %s ready (mode %s)", __version__, settings.ark_mode)
        try:
            yield
        finally:
            stop.set()
            retention_job.cancel()  # a run cut short is finished by the next (retention/cleanup.py)
            if runner_job is not None:
                await runner_job
            with contextlib.suppress(asyncio.CancelledError):
                await retention_job
            if runner is not None:
                for provider in runner.providers.values():
                    await provider.aclose()
            if relay is not None:
                await relay.stop()
            await app.state.probes.aclose()
            await state.reads.dispose()
            await state.engine.dispose()

    app = FastAPI(
        title="volcimage",
        version=__version__,
        description="Self-hosted studio for VolcEngine image generation (Seedream, SeedEdit).",
        lifespan=lifespan,
        docs_url=None,  # docs_page: Swagger UI without a CDN
        redoc_url=None,
    )
    app.state.volcimage = state
    app.state.probes = Probes(settings, state.catalog, state.emulator)
    _install_error_handlers(app)
    _document_errors(app)
    app.add_middleware(AccessControl, settings=settings)
    app.add_middleware(BodyLimit, settings=settings)  # before any lookup of the caller
    app.add_middleware(Outages)  # outside access control: its lookups read the database
    origins = settings.allowed_origins  # empty by default: the studio's own page needs no CORS
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials="*" not in origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    # level 9 (the default) costs 40 % more CPU for 1 % smaller bodies
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    image_origin = state.store.download_origin()
    app.add_middleware(SecurityHeaders, image_origin=image_origin)
    app.add_middleware(RequestMetrics)
    # outermost: everything after sees the client's address, forwarded or not (audit.client_of)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.include_router(audit_router)
    app.include_router(sign_in_router)
    app.include_router(users_router)
    app.include_router(templates_router)
    app.include_router(tasks_router)
    app.include_router(images_router)
    app.include_router(streams_router)
    app.include_router(system_router)
    app.include_router(metrics_router)
    if state.emulator is not None:
        app.mount("/emulator", state.emulator)
    install_docs(app, f"{settings.APP_NAME} API", image_origin)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    page = render_index(settings.APP_NAME)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    return app


def render_index(app_name: str) -> str:
    """The page with APP_NAME as its title and brand: right at first paint, before sign-in."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return page.replace("{{ app_name }}", html.escape(app_name))


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. validation_error"},
        "message": {"type": "string"},
        "details": {"type": "object"},
        "retry_after": {"type": "integer", "description": "Seconds (429 only)"},
    },
}
COMMON_ERRORS = {
    "400": "Invalid input",
    "401": "An API key is required (when ENABLE_API_KEY_AUTH is on)",
    "429": "Too many requests, or the daily image budget is used",
}
BODY_ERRORS = {"413": "The request body is over the route's limit (bodies.BodyLimit)"}


def _document_errors(app: FastAPI) -> None:
    """The schema says what the API does: 400 (not FastAPI's 422) for bad input, 401 and 429
    from the access layer, 413 where a body is sent, all with the one error body."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = default()
        schema["components"]["schemas"]["Error"] = ERROR_SCHEMA
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for operations in schema["paths"].values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, description in COMMON_ERRORS.items():
                    if status == "400" and not _takes_input(operation):
                        continue
                    responses[status] = {"description": description, **ref}
                for status, description in BODY_ERRORS.items():
                    if "requestBody" in operation:
                        responses[status] = {"description": description, **ref}
                for status in ("404", "409"):
                    if status in responses:
                        responses[status] = {**responses[status], **ref}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VolcImageError)
    async def product_error(_request: Request, exc: VolcImageError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(invalid_input(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route of a shared path
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return answer(
            VolcImageError(str(exc.detail), code=code, status_code=exc.status_code), headers
        )


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)
