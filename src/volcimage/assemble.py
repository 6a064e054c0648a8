"""A process's parts built from its settings: the state, the runner and retention. The app
(`volcimage serve`) and `volcimage worker` share them; a worker imports no web framework
beyond the demo mode's built-in emulator."""

from __future__ import annotations

import asyncio

from volcimage.catalog.models import load_catalog
from volcimage.core.config import Settings
from volcimage.core.db import Reads, create_engine, create_sessionmaker
from volcimage.events.bus import EventBus
from volcimage.http.state import State
from volcimage.providers.registry import build_providers
from volcimage.queue.runner import Runner
from volcimage.retention.schedule import Retention
from volcimage.storage import build_store


def build_state(settings: Settings) -> State:
    settings.ensure_dirs()
    engine = create_engine(settings)
    emulator = None
    if settings.ark_mode == "demo":
        from volcimage.emulator.app import create_emulator_app

        emulator = create_emulator_app(settings)
    return State(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        reads=Reads(settings, engine),
        catalog=load_catalog().configured(settings),
        store=build_store(settings),
        bus=EventBus(),
        emulator=emulator,
    )


def build_runner(state: State, retention: Retention | None = None) -> Runner:
    return Runner(
        state.settings,
        state.sessionmaker,
        state.reads,
        build_providers(state.settings, state.emulator),
        state.catalog,
        state.store,
        state.bus,
        on_disk_full=retention.on_disk_full if retention is not None else None,
    )


def start_retention(state: State, stop: asyncio.Event) -> tuple[Retention, asyncio.Task[None]]:
    """Retention for this process: its hourly runs (AUTO_CLEANUP), until `stop`."""
    retention = Retention(state.settings, state.sessionmaker, state.store)
    return retention, asyncio.create_task(retention.every_hour(stop), name="retention")
