"""Prometheus metrics: per-process counters from the app and runner, plus queue and storage
figures read from the database at scrape time (shared by every process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "volcimage_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "volcimage_http_request_duration_seconds", "Time to answer HTTP requests", ["method", "route"]
)
UPSTREAM_CALLS = Counter(
    "volcimage_upstream_calls_total",
    "Paid upstream calls by outcome (ok, or the upstream error code)",
    ["provider", "model", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    "volcimage_upstream_call_duration_seconds",
    "Upstream call time, submit to answer",
    ["provider", "model"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
IMAGES_STORED = Counter("volcimage_images_stored_total", "Images stored by this process")
TASKS = Gauge("volcimage_tasks", "Tasks in the database by status", ["status"])
QUEUE_DEPTH = Gauge("volcimage_queue_depth", "Tasks waiting to run (pending or retrying)")
IMAGES = Gauge("volcimage_images", "Images kept")
STORAGE_BYTES = Gauge("volcimage_storage_bytes", "Bytes of original images kept")
CLEANUP_FREED_BYTES = Counter(
    "volcimage_cleanup_freed_bytes", "Bytes of files removed by retention (this process's runs)"
)
CLEANUP_REMOVED = Counter(
    "volcimage_cleanup_removed", "What retention removed: tasks, uploads, files", ["kind"]
)
