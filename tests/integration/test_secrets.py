"""No secret ever leaves: a real server with known key strings is driven through success,
upstream refusals, bad logins and errors; every response body, header, page, metric and log
line is then searched for each secret."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support import Server, free_port, local, process_env

SECRETS = {
    "ARK_API_KEY": "ark-SECRET-7f3a9c2e41",
    "VOLC_ACCESS_KEY": "AKLT-SECRET-b81d55e0",
    "VOLC_SECRET_KEY": "sk-SECRET-0c4e9a7712",
    "API_KEY": "team-SECRET-91be3f",
    "SECRET_KEY": "cookie-SECRET-5d2a8b6f90e1c3d7a4f2b8e6c1d9a0f3",
}


def test_no_secret_in_any_response_page_metric_or_log(tmp_path: Path) -> None:
    emulator_port = free_port()
    emulator = Server(
        ["emulator", "--port", str(emulator_port)],
        process_env(tmp_path, "sqlite+aiosqlite:///:memory:", **SECRETS),
        tmp_path,
        emulator_port,
    )
    port = free_port()
    env = process_env(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/data/database.db",
        APP_PORT=port,
        VOLC_PROVIDER_MODE="real",
        ARK_BASE_URL=f"{emulator.url}/api/v3",
        VOLC_BASE_URL=f"{emulator.url}/visual",
        ENABLE_API_KEY_AUTH="true",
        APP_LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        **SECRETS,
    )
    server = Server(["serve"], env, tmp_path, port)
    seen: list[str] = []
    try:
        emulator.wait_ready("/_emulator/stats")
        server.wait_ready()
        key = {"X-API-Key": SECRETS["API_KEY"]}
        with httpx.Client(base_url=server.url, headers=key, timeout=30) as client:

            def get(path: str, **kwargs: object) -> httpx.Response:
                response = client.get(path, **kwargs)  # type: ignore[arg-type]
                seen.append(str(response.headers) + response.text)
                return response

            def post(path: str, **kwargs: object) -> httpx.Response:
                response = client.post(path, **kwargs)  # type: ignore[arg-type]
                seen.append(str(response.headers) + response.text)
                return response

            def finish(model: str) -> dict[str, object]:
                task_id = post("/api/v1/generate", json={"prompt": "x", "model": model}).json()
                deadline = time.monotonic() + 120  # a safety net for a busy machine
                while (task := get(f"/api/v1/task/{task_id['task_id']}").json())["status"] in (
                    "pending",
                    "processing",
                ):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                return dict(task)

            assert finish("seedream-3.0")["status"] == "completed"
            assert finish("jimeng-3.1")["status"] == "completed"
            local.post(f"{emulator.url}/_emulator/faults", json={"faults": ["auth", "quota"]})
            refused = [finish("seedream-3.0"), finish("seedream-3.0")]
            codes = [t["error"]["code"] for t in refused]  # type: ignore[index]
            assert codes == ["AuthenticationError", "QuotaExceeded"]
            post("/api/v1/session", json={"api_key": "wrong"})
            post("/api/v1/session", json={"api_key": SECRETS["API_KEY"]})
            post("/api/v1/generate", json={"prompt": ""})
            post("/api/v1/generate", content=b"{not json")
            for path in (
                "/",
                "/docs",
                "/openapi.json",
                "/api/v1/system/info",
                "/api/v1/models",
                "/api/v1/health",
                "/api/v1/tasks",
                "/api/v1/history",
                "/api/v1/audit",
                "/metrics",
                "/api/v1/task/missing",
                "/static/js/main.js",
            ):
                get(path)
            deadline_tasks = get("/api/v1/tasks").json()["items"]
            assert len(deadline_tasks) == 4
    finally:
        server.stop()
        emulator.stop()
    logs = [p.read_text(errors="replace") for p in tmp_path.rglob("*.log")]
    assert logs and any('"level"' in text for text in logs)
    everything = "\n".join(seen + logs)
    for name, value in SECRETS.items():
        assert value not in everything, f"{name} leaked"
