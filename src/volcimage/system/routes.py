"""Models, system information and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from volcimage import __version__
from volcimage.auth.deps import CallerDep
from volcimage.auth.models import User
from volcimage.core.config import PROVIDER_CREDENTIALS, ProviderState
from volcimage.core.migrate import SCHEMA_HEAD, revision_of
from volcimage.http.deps import SessionDep, StateDep
from volcimage.images.uploads import limits
from volcimage.system import health as checks_of
from volcimage.system.metrics import render as render_metrics
from volcimage.system.probes import Probe, Probes
from volcimage.tasks.params import GenerationParams
from volcimage.tasks.quota import daily_limit, images_admitted_today

router = APIRouter(prefix="/api/v1", tags=["system"])
metrics_router = APIRouter()
PARAMS_SCHEMA = GenerationParams.model_json_schema()


class Quota(BaseModel):
    used: int
    limit: int | None


class ProviderInfo(BaseModel):
    state: ProviderState = Field(
        description="real: calls go to VolcEngine; demo: to the built-in emulator; "
        "not_configured: to VolcEngine without the credentials they need, so they fail"
    )
    models: list[str] = Field(description="Catalog ids of the models this upstream serves")
    credentials: list[str] = Field(description="The settings it needs (names only)")
    connected: bool | None = Field(
        description="real: its credentials proved by a request that costs nothing (kept a few "
        "minutes; null while the first is under way); demo: true; not_configured: false"
    )
    detail: str = Field("", description="What the upstream said to the probe, or what failed")


class SystemInfo(BaseModel):
    version: str
    api_connected: bool = Field(
        description="No provider is known to fail: each is configured and none was refused"
    )
    mode: str = Field(description="demo when every provider is the emulator, else real")
    providers: dict[str, ProviderInfo] = Field(description="ark (Seedream, SeedEdit), visual")
    models: list[str]
    quota: Quota = Field(description="Images asked for today by everyone, and the daily budget")
    user_quota: Quota | None = Field(None, description="The signed-in user's own, with accounts")


@router.get("/models")
async def models(state: StateDep) -> dict[str, Any]:
    """The model catalog: sizes, counts and parameters each model takes, and its price; what
    a reference image upload may be (`uploads`); and the JSON Schema of a POST /generate body
    (`params`: every parameter, its type, default and bounds; a model's own are in `models`)."""
    catalog = state.catalog
    items = [
        {
            **m.model_dump(exclude={"size_rule", "upstream_id"}),
            "size_rule": m.size_rule.model_dump(exclude_defaults=True),
            "min_width": m.size_rule.min_side if m.size_rule.mode == "sides" else None,
            "max_width": m.size_rule.max_side if m.size_rule.mode == "sides" else None,
        }
        for m in catalog.models
    ]
    uploads = limits(state.settings.MAX_UPLOAD_MB * 1024 * 1024)
    return {
        "models": items,
        "default_model": catalog.default_model,
        "uploads": uploads,
        "params": PARAMS_SCHEMA,
    }


@router.get("/system/info", response_model=SystemInfo)
async def system_info(
    request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> SystemInfo:
    used = await images_admitted_today(session)
    settings = state.settings
    user = await session.get(User, caller.user_id) if caller.user_id is not None else None
    user_quota = None
    if user is not None:
        mine = await images_admitted_today(session, user.id)
        user_quota = Quota(used=mine, limit=daily_limit(user, settings))
    states = settings.provider_states()
    probes: Probes = request.app.state.probes
    proved = await probes.results()
    providers = {
        name: ProviderInfo(
            state=value,
            models=[m.id for m in state.catalog.models if m.provider == name],
            credentials=PROVIDER_CREDENTIALS[name],
            connected=_connected(value, proved.get(name)),
            detail=proved[name].detail if name in proved else "",
        )
        for name, value in states.items()
    }
    return SystemInfo(
        version=__version__,
        api_connected=all(p.connected is not False for p in providers.values()),
        mode="demo" if set(states.values()) == {"demo"} else "real",
        providers=providers,
        models=[m.id for m in state.catalog.models],
        quota=Quota(used=used, limit=settings.DAILY_IMAGE_QUOTA or None),
        user_quota=user_quota,
    )


def _connected(state: ProviderState, probe: Probe | None) -> bool | None:
    if state == "real":
        return None if probe is None else probe.connected
    return state == "demo"


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(session: SessionDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    body, content_type = await render_metrics(session)
    return Response(body, media_type=content_type)


@router.get("/ready")
async def ready(session: SessionDep, state: StateDep) -> JSONResponse:
    """Readiness: 200 once the database answers with the schema this version expects."""
    try:
        current = await revision_of(session)
    except Exception as exc:
        body = {"status": "error", "checks": {"database": f"error: {type(exc).__name__}"}}
        return JSONResponse(body, status_code=503)
    ok = current == SCHEMA_HEAD
    body = {
        "status": "ok" if ok else "error",
        "checks": {"schema": "ok" if ok else f"at {current}, expected {SCHEMA_HEAD}"},
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/health")
async def health(session: SessionDep, state: StateDep) -> JSONResponse:
    """200 when the database answers and takes writes and files can be stored, else 503
    naming what is wrong (read-only, missing, locked, disk full, bucket unreachable)."""
    checks = {
        "database": await checks_of.database(session, state.settings),
        "storage": await checks_of.storage(state.store, state.settings),
    }
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "error", "version": __version__, "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
