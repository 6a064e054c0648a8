"""Task, history, image and event endpoints. Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated

from fastapi import (
    APIRouter,
    Query,
    Request,
    Response,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from volcimage.audit import log as audit
from volcimage.auth.deps import CallerDep
from volcimage.auth.visibility import Caller
from volcimage.core.errors import (
    ERRORS,
    STATE_ERRORS,
    NotFound,
)
from volcimage.core.text import Text
from volcimage.http.deps import SessionDep, StateDep
from volcimage.http.state import State
from volcimage.tasks import estimates, reads, service
from volcimage.tasks.models import Task, TaskStatus
from volcimage.tasks.schemas import (
    GenerateRequest,
    GenerateResponse,
    HistoryPage,
    IsoDatetime,
    TaskList,
    TaskPublic,
)

router = APIRouter(prefix="/api/v1", tags=["tasks"])


@router.post("/generate", status_code=201, response_model=GenerateResponse, responses=ERRORS)
async def generate(
    body: GenerateRequest, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> GenerateResponse:
    """Queue a generation task; follow it with GET /task/{id}, GET /events or the WebSocket."""
    return await queue_task(body, request, session, state, caller)


async def queue_task(
    body: GenerateRequest,
    connection: HTTPConnection,
    session: AsyncSession,
    state: State,
    caller: Caller,
) -> GenerateResponse:
    task, warnings = await service.create_task(session, body, state.catalog, state.settings, caller)
    ahead = await service.count_active(session)
    audit.record(
        session,
        connection,
        "task.create",
        task.task_id,
        model=task.model,
        prompt=task.prompt,
        num_images=task.num_images,
    )
    await session.commit()
    await _publish(state, "task.created", task.id)  # first: the runner may claim it already
    concurrency = state.settings.MAX_CONCURRENT_TASKS
    estimated = await session.run_sync(estimates.queued_seconds, task, ahead - 1, concurrency)
    return GenerateResponse(
        task_id=task.task_id,
        status=task.status,
        created_at=task.created_at,
        estimated_time=estimated,
        warnings=warnings,
    )


@router.get("/task/{task_id}", response_model=TaskPublic, responses=ERRORS)
async def get_task(task_id: Text, state: StateDep, caller: CallerDep) -> TaskPublic:
    return await state.reads(service.show_task, task_id, caller, indexed=True)


@router.get("/tasks", response_model=TaskList)
async def list_tasks(
    state: StateDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    status: TaskStatus | None = None,
) -> TaskList:
    return TaskList(
        items=await state.reads(
            service.list_tasks,
            caller,
            limit,
            status,
            indexed=status is None,  # newest: an index
        )
    )


@router.post("/task/{task_id}/cancel", response_model=TaskPublic, responses=STATE_ERRORS)
async def cancel_task(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> TaskPublic:
    task = await service.cancel_task(session, await service.get_task(session, task_id, caller))
    audit.record(session, request, "task.cancel", task_id)
    await session.commit()
    if task.cancel_requested:
        state.bus.request_cancel(task.id)
    return await _publish(state, "task.updated", task.id)


@router.post("/task/{task_id}/retry", response_model=TaskPublic, responses=STATE_ERRORS)
async def retry_task(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> TaskPublic:
    task = await service.retry_task(
        session, await service.get_task(session, task_id, caller), state.settings
    )
    audit.record(session, request, "task.retry", task_id)
    await session.commit()
    return await _publish(state, "task.created", task.id)


async def _publish(state: State, kind: str, pk: int) -> TaskPublic:
    """Announces the task as it now is, and returns it as announced."""
    shown = await state.reads(reads.by_pk, pk, indexed=True)
    if shown is None:  # deleted by another request since this one committed
        raise NotFound("The task was deleted meanwhile")
    state.bus.publish(reads.event(kind, shown))
    return shown.task


@router.delete("/task/{task_id}", status_code=204, responses=ERRORS)
async def delete_task(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    """Cancel the task if it is running, then delete it with its images."""
    return await _delete(await service.get_task(session, task_id, caller), request, session, state)


@router.get("/history", response_model=HistoryPage)
async def history(
    state: StateDep,
    caller: CallerDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[Text | None, Query(max_length=200, description="Search prompt text")] = None,
    model: Text | None = None,
    status: TaskStatus | None = None,
    date_from: IsoDatetime | None = None,
    date_to: IsoDatetime | None = None,
    favorite: Annotated[bool | None, Query(description="With (or without) a favourite")] = None,
    tag: Annotated[Text | None, Query(max_length=50, description="With an image so tagged")] = None,
) -> HistoryPage:
    total, tasks = await state.reads(
        functools.partial(
            service.history,
            caller=caller,
            page=page,
            limit=limit,
            q=q,
            model=model,
            status=status,
            date_from=date_from,
            date_to=date_to,
            favorite=favorite,
            tag=tag,
        ),
        # unfiltered and near the top, a page and its count walk indexes (the count: 0.75 ms at
        # 100k tasks); deep offsets walk far
        indexed=page * limit <= 1000
        and not (q or model or status or date_from or date_to or tag or favorite is not None),
    )
    return HistoryPage(total=total, page=page, limit=limit, items=tasks)


@router.delete("/history/{task_id}", status_code=204, responses=ERRORS)
async def delete_history(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    return await _delete(await service.get_task(session, task_id, caller), request, session, state)


async def _delete(task: Task, request: Request, session: AsyncSession, state: State) -> Response:
    task_id, owner = task.task_id, task.owner_id
    orphans = await service.delete_task(session, task)
    audit.record(session, request, "task.delete", task_id, prompt=task.prompt)
    await session.commit()
    for original, thumbnail in orphans:
        await asyncio.to_thread(state.store.delete, original, thumbnail)
    state.bus.publish({"type": "task.deleted", "owner": owner, "task": {"task_id": task_id}})
    return Response(status_code=204)
