"""Load: many tasks in flight against the emulator while another process reads the API hard.

    .venv/bin/python bench/load.py --tasks 200 --reads 500 --seconds 40
    .venv/bin/python bench/load.py --database postgresql --workers 1 --serve 2

Starts its own server(s), workers and emulator on free ports with a throwaway database,
submits --tasks tasks at once, and meanwhile a second process issues --reads requests a second
(task, history and list reads, spread over the --serve processes) for --seconds. Prints reads
while the tasks ran and after, latency percentiles, errors and the CPU seconds of every
process, and checks nothing was lost: every task final, one image per requested image, one
upstream call per image. Not a test: figures vary with the machine (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from volcimage.core.config import load_settings
from volcimage.core.db import create_engine
from volcimage.tasks.models import Image, Task, UpstreamCall

MAX_IN_FLIGHT = 128  # beyond this the reader waits: an open loop would only queue forever
PG_ADMIN = os.environ.get("VOLCIMAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# (answered at, on the shared monotonic clock; seconds; ok; what was read)
Sample = tuple[float, float, bool, str]
KINDS = ("task", "history", "tasks")


async def reader(
    urls: list[str], rate: int, seconds: float, ids: list[str], out: dict[str, Any]
) -> None:
    samples: list[Sample] = []
    # aiohttp: ~0.2 ms of CPU a request where httpx takes ~1.9 ms, and both share the server's
    # two cores here (docs/benchmarks.md)
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        start = time.monotonic()
        sent = 0

        async def one(path: str, kind: str) -> None:
            began = time.monotonic()
            try:
                async with client.get(path) as response:
                    await response.read()
                    ok = response.status < 400
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            answered = time.monotonic()
            samples.append((answered, answered - began, ok, kind))

        pending: set[asyncio.Task[None]] = set()
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            sent = max(sent, due - rate)  # fall behind by at most a second, never bank it
            while sent < due and len(pending) < MAX_IN_FLIGHT:
                kind = KINDS[sent % 3] if ids else KINDS[1 + sent % 2]
                path = (
                    urls[sent % len(urls)]
                    + {
                        "task": f"/api/v1/task/{ids[sent % len(ids)] if ids else ''}",
                        "history": "/api/v1/history?limit=20",
                        "tasks": "/api/v1/tasks?limit=20",
                    }[kind]
                )
                task = asyncio.create_task(one(path, kind))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*pending)
    out.update(samples=samples, start=start, end=time.monotonic())


def summary(samples: list[Sample], start: float, end: float) -> str:
    chosen = [sample for sample in samples if start <= sample[0] < end]
    if end - start < 1 or not chosen:
        return "none"
    latencies = [sample[1] for sample in chosen]
    errors = sum(1 for sample in chosen if not sample[2])
    return (
        f"{len(chosen)} at {len(chosen) / (end - start):.0f}/s over {end - start:.0f} s, "
        f"errors {errors}, p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )


async def wait_ready(client: httpx.AsyncClient, url: str) -> None:
    for _ in range(300):
        try:
            if (await client.get(url + "/api/v1/health")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent busy so far (Linux): what the bench's
    own processes do not account for is PostgreSQL and the kernel."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def reader_process(
    urls: list[str], rate: int, seconds: float, ids: list[str], queue: object
) -> None:
    out: dict[str, Any] = {}
    asyncio.run(reader(urls, rate, seconds, ids, out))
    out["cpu_s"] = time.process_time()
    queue.put(out)  # type: ignore[attr-defined]


async def query(engine: AsyncEngine, stmt: Any) -> list[Any]:
    """Reads the database directly: asking the server would add to the load being measured."""
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="volcimage-bench-"))
    database = f"sqlite+aiosqlite:///{tmp}/database.db"
    pg_name = None
    if args.database == "postgresql":
        pg_name = f"volcimage_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{pg_name}"')
        await conn.close()
        database = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "DATA_DIR": str(tmp),
        "IMAGE_DIR": str(tmp / "images"),
        "THUMBNAIL_DIR": str(tmp / "thumbnails"),
        "LOG_FILE": "",
        "APP_LOG_LEVEL": "WARNING",
        "VOLC_PROVIDER_MODE": "demo",
        "EMULATOR_LATENCY_MS": str(args.latency_ms),
        "MAX_CONCURRENT_TASKS": str(args.concurrency),
        "MAX_PENDING_TASKS": str(args.tasks + 10),
        "RATE_LIMIT_PER_MINUTE": "0",
        "TASK_POLL_INTERVAL": "0.2",
        "APP_PORT": str(port),
    }
    python = sys.executable
    processes: dict[str, subprocess.Popen[bytes]] = {}
    if args.emulator == "external":  # its rendering off the app's CPU budget, as upstream is
        emulator_port = free_port()
        processes["emulator"] = subprocess.Popen(
            [python, "-m", "volcimage", "emulator", "--port", str(emulator_port)], env=env, cwd=tmp
        )
        env.update(
            VOLC_PROVIDER_MODE="real",
            ARK_API_KEY="bench-key",
            ARK_BASE_URL=f"http://127.0.0.1:{emulator_port}/api/v3",
        )
    serve = ["serve"] if args.workers == 0 else ["serve", "--no-runner"]
    ports = [port] + [free_port() for _ in range(args.serve - 1)]
    for n, each in enumerate(ports, 1):
        command = [python, "-m", "volcimage", *serve, "--port", str(each)]
        processes[f"serve {n}"] = subprocess.Popen(command, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    urls = [f"http://127.0.0.1:{each}" for each in ports]
    cpu: dict[str, float] = {}
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=database))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for address in urls:
                await wait_ready(client, address)
            startup = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            startup["bench"] = time.process_time()
            for n in range(1, args.workers + 1):
                processes[f"worker {n}"] = subprocess.Popen(
                    [python, "-m", "volcimage", "worker"], env=env, cwd=tmp
                )
            started = time.monotonic()
            busy_before = machine_busy_seconds()
            body = {"prompt": "bench", "model": "seedream-3.0", "num_images": args.images}
            created = await asyncio.gather(
                *(client.post("/api/v1/generate", json=body) for _ in range(args.tasks))
            )
            submit_errors = sum(1 for r in created if r.status_code != 201)
            ids = [r.json()["task_id"] for r in created if r.status_code == 201]
            submitted = time.monotonic() - started

            spawn = multiprocessing.get_context("spawn")  # not a fork of a running event loop
            queue: multiprocessing.Queue[dict[str, Any]] = spawn.Queue()
            reads = spawn.Process(
                target=reader_process, args=(urls, args.reads, args.seconds, ids, queue)
            )
            reads.start()
            final = ("completed", "failed", "cancelled")
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                rows = await query(engine, select(func.count()).where(Task.status.in_(final)))
                if rows[0][0] >= len(ids):
                    break
                await asyncio.sleep(0.5)
            finished_at = time.monotonic()
            finished = finished_at - started
            read_figures = queue.get(timeout=args.seconds + 60)
            reads.join()
            wall = time.monotonic() - started
        tasks = await query(
            engine,
            select(Task.status, Task.num_images, Task.created_at, Task.completed_at),
        )
        images = (await query(engine, select(func.count()).select_from(Image)))[0][0]
        billed = func.count() + func.coalesce(func.sum(UpstreamCall.lost_calls), 0)
        calls = (await query(engine, select(billed)))[0][0]
        cpu = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        cpu["reader"] = read_figures["cpu_s"]
        cpu["bench"] = time.process_time()
        cpu["others (PostgreSQL, kernel)"] = (
            machine_busy_seconds() - busy_before - sum(cpu.values()) + sum(startup.values())
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(30)
        await engine.dispose()
        if pg_name:
            conn = await asyncpg.connect(PG_ADMIN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await conn.close()

    done = [t for t in tasks if t.status in final]
    completed = [t for t in done if t.status == "completed"]
    durations = [(t.completed_at - t.created_at).total_seconds() for t in completed]
    print(
        f"database {args.database}, workers {args.workers or 'in serve'}, "
        f"concurrency {args.concurrency}/process, emulator {args.emulator} "
        f"({args.latency_ms} ms a call)"
    )
    print(
        f"tasks: {len(ids)} submitted in {submitted:.2f} s ({submit_errors} refused), "
        f"{len(done)} final in {finished:.1f} s, {len(completed)} completed"
    )
    print(
        f"throughput: {len(completed) / finished:.1f} tasks/s, {images / finished:.1f} images/s; "
        f"task time p50 {statistics.median(durations) if durations else float('nan'):.0f} s"
    )
    samples, start, end = read_figures["samples"], read_figures["start"], read_figures["end"]
    print(f"reads asked: {args.reads}/s for {args.seconds:.0f} s")
    print(f"  while tasks ran: {summary(samples, start, min(finished_at, end))}")
    print(f"  after:           {summary(samples, finished_at, end)}")
    print(f"  in all:          {summary(samples, start, end)}")
    for kind in KINDS:
        mine = [sample for sample in samples if sample[3] == kind]
        print(f"    {kind + ':':8} {summary(mine, start, end)}")
    print(
        "CPU seconds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()),
        f"(of {wall * (os.cpu_count() or 1):.0f} on {os.cpu_count()} cores)",
    )
    lost = len(ids) - len(done)
    print(
        f"check: not final {lost}, images {images} of {len(completed) * args.images} asked, "
        f"upstream calls {calls} for {len(ids) * args.images} images"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--reads", type=int, default=500, help="read requests per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: in serve)")
    parser.add_argument(
        "--serve", type=int, default=1, help="serve processes, each on its own port, read in turn"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=800)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--emulator", choices=["external", "inprocess"], default="external")
    asyncio.run(main(parser.parse_args()))
