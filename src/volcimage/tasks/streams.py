"""Live task events: Server-Sent Events (GET /events) and the WebSocket (/generate/stream)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError as PydanticValidationError
from sse_starlette.sse import EventSourceResponse

from volcimage.auth.access import recheck
from volcimage.auth.deps import CallerDep
from volcimage.auth.visibility import Caller, event_for, needs_recheck
from volcimage.core.errors import ValidationError, VolcImageError, body_of, invalid_input
from volcimage.events.bus import IDLE
from volcimage.http.deps import StateDep
from volcimage.http.state import State
from volcimage.tasks.routes import queue_task
from volcimage.tasks.schemas import GenerateRequest

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(request: Request, state: StateDep, caller: CallerDep) -> EventSourceResponse:
    """Server-Sent Events: `event: task`, data `{type, task}` on every change of a task the
    caller may see; `{"type": "events.missed"}` when some may have been lost (read again)."""

    async def stream() -> AsyncIterator[dict[str, str]]:
        current, recheck_every = caller, state.settings.SESSION_RECHECK_SECONDS
        async with state.bus.subscribe() as queue:
            yield {"event": "ready", "data": "{}"}
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=recheck_every)
                except TimeoutError:  # sse-starlette sends its own keep-alive pings
                    event = IDLE
                if needs_recheck(current, event):
                    checked = await recheck(request, current)
                    if checked is None:
                        return  # signed out: the page's next request is a 401
                    current = checked
                public = event_for(current, event)
                if public is not None:
                    yield {"event": "task", "data": json.dumps(public, ensure_ascii=False)}

    return EventSourceResponse(stream(), ping=15, headers={"X-Accel-Buffering": "no"})


SIGNED_OUT = 1008, "The session has ended; sign in again"  # policy violation


@router.websocket("/generate/stream")
async def generate_stream(websocket: WebSocket, state: StateDep, caller: CallerDep) -> None:
    """The events of GET /events as JSON messages `{type, task}`; send
    `{"type": "generate", ...}` (the body of POST /generate) to queue a task: the answer is
    `{"type": "task.queued", ...}` or `{"type": "error", error, message, details}`. Closed
    (1008) once the session it was opened with ends."""
    await websocket.accept()
    sending = anyio.Lock()  # events and replies come from two tasks; frames must not interleave
    current, recheck_every = caller, state.settings.SESSION_RECHECK_SECONDS

    async def send(message: dict[str, Any]) -> None:
        async with sending:
            await websocket.send_json(message)

    async with state.bus.subscribe() as queue, anyio.create_task_group() as group:

        async def signed_out() -> None:
            with contextlib.suppress(Exception):  # the client may be gone already
                async with sending:
                    await websocket.close(*SIGNED_OUT)
            group.cancel_scope.cancel()

        async def still_signed_in() -> bool:
            nonlocal current
            checked = await recheck(websocket, current)
            if checked is None:
                await signed_out()
                return False
            current = checked
            return True

        async def forward() -> None:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=recheck_every)
                except TimeoutError:
                    event = IDLE
                if needs_recheck(current, event) and not await still_signed_in():
                    return
                public = event_for(current, event)
                if public is None:
                    continue
                try:
                    await send(public)
                except Exception:  # the client is gone: the receiving loop ends too
                    return

        group.start_soon(forward)
        await send({"type": "ready"})
        try:
            while True:
                text = await websocket.receive_text()
                # the session may have ended in a process whose notice has not come yet
                if not await still_signed_in():
                    return
                await send(await _command(text, websocket, state, current))
        except WebSocketDisconnect:
            pass
        group.cancel_scope.cancel()


async def _command(text: str, websocket: WebSocket, state: State, caller: Caller) -> dict[str, Any]:
    try:
        message = json.loads(text)
        if not isinstance(message, dict) or message.get("type") != "generate":
            raise ValidationError('Send {"type": "generate", ...} with a POST /generate body')
        body = GenerateRequest.model_validate({k: v for k, v in message.items() if k != "type"})
        async with state.sessionmaker() as session:
            queued = await queue_task(body, websocket, session, state, caller)
    except json.JSONDecodeError:
        return {"type": "error", **body_of(ValidationError("The message is not valid JSON"))}
    except RecursionError:  # json.loads of a message nested thousands deep
        return {"type": "error", **body_of(ValidationError("The message is nested too deeply"))}
    except PydanticValidationError as exc:
        return {"type": "error", **jsonable_encoder(body_of(invalid_input(exc.errors())))}
    except VolcImageError as exc:
        return {"type": "error", **body_of(exc)}
    return {"type": "task.queued", **queued.model_dump(mode="json")}
