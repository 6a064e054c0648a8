"""The in-process transport to the emulator: a caller that gives up takes the app's answer
with it, so nothing is left running or raising after it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from volcimage.providers.local import StreamingASGITransport


async def test_a_caller_that_gives_up_before_the_answer_cancels_the_app() -> None:
    entered, released = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        try:
            await released.wait()
            start: Message = {"type": "http.response.start", "status": 200, "headers": []}
            await send(start)
            await send({"type": "http.response.body", "body": b"late"})
            outcome.append("answered")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    async with httpx.AsyncClient(transport=StreamingASGITransport(slow_app)) as client:
        call = asyncio.create_task(client.get("http://emulator/slow"))
        await entered.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        released.set()
        for _ in range(10):  # let the app's task run to its end
            await asyncio.sleep(0)
    assert outcome == ["cancelled"]


async def test_an_answer_streams_as_the_app_sends_it() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"one ", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    async with httpx.AsyncClient(transport=StreamingASGITransport(app)) as client:
        answer = await client.post("http://emulator/", content=b"{}")
    assert (answer.status_code, answer.headers["x-a"], answer.text) == (201, "1", "one two")
