"""Disk and memory: what a stored image costs (original + thumbnail), to size a host.

    .venv/bin/python bench/disk.py --images 50

Starts `volcimage serve` in demo mode on a free port with a throwaway data directory, makes
--images images with each model of the catalog at its default size (distinct prompts, so no
two files are the same), and reports the bytes added under images/ and thumbnails/ per image
and per thousand; then the server's resident memory, idle and at its peak after five tasks of
four 4096×4096 images at once (the default MAX_CONCURRENT_TASKS). The emulator's pictures are
smooth shapes, far smaller than real ones, so it also encodes a picture of natural-image
statistics (fractal noise, the 1/f spectrum of photos) at each default size the way the
upstream sends it (JPEG from Ark, PNG from the Visual API), with the app's own thumbnail: an
estimate of what real upstream images cost.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from volcimage.catalog.models import ModelInfo, load_catalog
from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY
from volcimage.images.processing import make_thumbnail

MB = 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def natural_picture(width: int, height: int, seed: int) -> Image.Image:
    """Octaves of random noise, each twice as fine and half as strong: a 1/f spectrum."""
    rng = random.Random(seed)
    picture = Image.new("RGB", (width, height), (128, 128, 128))
    cells, weight = 4, 0.5
    while cells < max(width, height):
        pixels = bytes(rng.getrandbits(8) for _ in range(cells * cells * 3))
        layer = Image.frombytes("RGB", (cells, cells), pixels)
        layer = layer.resize((width, height), Image.Resampling.BICUBIC)
        picture = Image.blend(picture, layer, weight)
        cells, weight = cells * 2, weight * 0.6
    return picture


def real_estimate(size: str, fmt: str, quality: int) -> tuple[int, int]:
    width, height = (int(v) for v in size.split("x"))
    picture = natural_picture(width, height, seed=width * height)
    out = io.BytesIO()
    if fmt == "JPEG":
        picture.save(out, "JPEG", quality=quality)
    else:
        picture.save(out, "PNG")
    return len(out.getvalue()), len(make_thumbnail(picture, 400, 85))


def resident_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def wait_completed(client: httpx.Client, ids: list[str]) -> None:
    for task_id in ids:
        while (task := client.get(f"/api/v1/task/{task_id}").json())["status"] in (
            "pending",
            "processing",
        ):
            time.sleep(0.2)
        if task["status"] != "completed":
            raise SystemExit(f"task {task_id} ended {task['status']}: {task.get('error')}")


def largest(url: str, model: str) -> None:
    """Five tasks of four of the largest images, all running at once; each must complete."""
    with httpx.Client(base_url=url, timeout=60) as client:
        body = {"model": model, "num_images": 4, "width": 4096, "height": 4096}
        ids = [
            client.post("/api/v1/generate", json={**body, "prompt": f"large {n}"}).json()["task_id"]
            for n in range(5)
        ]
        wait_completed(client, ids)


def measure(url: str, data: Path, model: ModelInfo, images: int) -> tuple[float, float]:
    """Bytes per image under images/ and thumbnails/, at the model's default size (SeedEdit:
    the size of its reference, an upload of that size)."""
    ids = []
    with httpx.Client(base_url=url, timeout=60) as client:
        references = []
        if model.min_reference_images:
            width, height = model.default_dimensions
            out = io.BytesIO()
            natural_picture(width, height, seed=1).save(out, "JPEG", quality=90)
            files = {"file": ("reference.jpg", out.getvalue(), "image/jpeg")}
            references = [client.post("/api/v1/uploads", files=files).json()["upload_id"]]
        before = tree_bytes(data / "images"), tree_bytes(data / "thumbnails")
        left, n = images, 0
        while left:
            count = min(4, left)
            body = {
                "prompt": f"disk {model.id} {n}",
                "model": model.id,
                "num_images": count,
                "reference_images": references,
            }
            answer = client.post("/api/v1/generate", json=body)
            answer.raise_for_status()
            ids.append(answer.json()["task_id"])
            left, n = left - count, n + 1
        wait_completed(client, ids)
    after = tree_bytes(data / "images"), tree_bytes(data / "thumbnails")
    return (after[0] - before[0]) / images, (after[1] - before[1]) / images


def start(data: Path, command: list[str], **settings: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "IMAGE_DIR": str(data / "images"),
        "THUMBNAIL_DIR": str(data / "thumbnails"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{data}/database.db",
        "LOG_FILE": str(data / "app.log"),
        "EMULATOR_LATENCY_MS": "0",
        "RATE_LIMIT_PER_MINUTE": "0",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "volcimage", *command],
        env=env,
        cwd=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_answering(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def disk(url: str, data: Path, images: int, jpeg_quality: int) -> None:
    catalog = load_catalog()
    print(f"{'model':18} {'size':>9} | demo: image  thumb  MB/1000 | real-like: ", end="")
    print("image  thumb  MB/1000")
    for model in catalog.models:
        image, thumb = measure(url, data, model, images)
        fmt = "JPEG" if model.provider == "ark" else "PNG"
        real, real_thumb = real_estimate(model.default_size, fmt, jpeg_quality)
        print(
            f"{model.id:18} {model.default_size:>9} | "
            f"{image / 1024:8.0f}K {thumb / 1024:5.0f}K "
            f"{(image + thumb) * 1000 / MB:7.0f} | "
            f"{fmt:4} {real / 1024:6.0f}K {real_thumb / 1024:5.0f}K "
            f"{(real + real_thumb) * 1000 / MB:7.0f}"
        )
    database = tree_bytes(data) - tree_bytes(data / "images") - tree_bytes(data / "thumbnails")
    total = images * len(catalog.models)
    print(f"database, uploads and log: {database / MB:.1f} MB for {total} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="images per model")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="for the estimate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo, real = Path(tmp) / "demo", Path(tmp) / "real"
        demo.mkdir()
        real.mkdir()
        port, emulator_port, real_port = free_port(), free_port(), free_port()
        processes = []
        try:
            server = start(demo, ["serve"], APP_PORT=str(port), VOLC_PROVIDER_MODE="demo")
            processes.append(server)
            url = f"http://127.0.0.1:{port}"
            wait_answering(f"{url}/api/v1/health")
            idle = resident_mb(server.pid, "VmRSS")
            disk(url, demo, args.images, args.jpeg_quality)
            largest(url, "seedream-4.0")
            peak = resident_mb(server.pid, "VmHWM")
            print(f"demo server (emulator inside): {idle:.0f} MB idle, {peak:.0f} MB at most")
            # As against the real API: the emulator in a process of its own, the app in real mode
            emulator = start(real, ["emulator", "--port", str(emulator_port)])
            processes.append(emulator)
            wait_answering(f"http://127.0.0.1:{emulator_port}/")
            server = start(
                real,
                ["serve"],
                APP_PORT=str(real_port),
                VOLC_PROVIDER_MODE="real",
                ARK_API_KEY="bench-key",
                ARK_BASE_URL=f"http://127.0.0.1:{emulator_port}/api/v3",
                VOLC_ACCESS_KEY=DEMO_ACCESS_KEY,
                VOLC_SECRET_KEY=DEMO_SECRET_KEY,
                VOLC_BASE_URL=f"http://127.0.0.1:{emulator_port}/visual",
            )
            processes.append(server)
            url = f"http://127.0.0.1:{real_port}"
            wait_answering(f"{url}/api/v1/health")
            idle = resident_mb(server.pid, "VmRSS")
            for model in ("seedream-4.0", "jimeng-4.0"):  # JPEG, then PNG
                largest(url, model)
                peak = resident_mb(server.pid, "VmHWM")
                print(f"server in real mode (emulator apart): {idle:.0f} MB idle, ", end="")
                print(f"{peak:.0f} MB at most after {model}")
        finally:
            for process in processes:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
