"""What retention chooses to remove: by age, by storage cap (oldest first), unused uploads and
files no row names; never what is running or queued, favourites unless told, nor a file a kept
row still names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from volcimage.retention.plan import (
    ORPHAN_GRACE,
    FileKey,
    Limits,
    TaskFacts,
    UploadFacts,
    plan,
)
from volcimage.storage.files import StoredFile

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW.timestamp() - 2 * ORPHAN_GRACE.total_seconds()  # files' time, past the grace
NO_LIMITS = Limits(max_age=None, max_bytes=None)


def files_of(name: str) -> frozenset[FileKey]:
    return frozenset({("images", f"{name}.jpg"), ("thumbnails", f"{name}.webp")})


def task(pk: int, days_old: float, *, name: str | None = None, **facts: object) -> TaskFacts:
    values: dict[str, object] = {
        "pk": pk,
        "task_id": f"t{pk}",
        "created_at": NOW - timedelta(days=days_old),
        "active": False,
        "favorite": False,
        "files": files_of(name or f"f{pk}"),
        "image_ids": frozenset({f"i{pk}"}),
    }
    values.update(facts)
    return TaskFacts(**values)  # type: ignore[arg-type]


def listing(*rows: TaskFacts | UploadFacts, size: int = 100) -> dict[FileKey, StoredFile]:
    return {key: StoredFile(key[1], size, OLD) for row in rows for key in row.files}


def removed(result: object) -> list[str]:
    return [t.task_id for t, _ in result.tasks]  # type: ignore[attr-defined]


def test_by_age_removes_older_tasks_with_their_files() -> None:
    old, young = task(1, 40), task(2, 5)
    result = plan(NOW, Limits(timedelta(days=30), None), [old, young], [], listing(old, young))
    assert [(t.task_id, why) for t, why in result.tasks] == [("t1", "age")]
    assert set(result.files) == old.files
    assert result.freed_bytes == 200 and result.used_bytes == 400
    assert not result.orphans


def test_running_and_queued_tasks_and_favourites_are_never_chosen() -> None:
    running = task(1, 90, active=True)
    favourite = task(2, 90, favorite=True)
    done = task(3, 90)
    rows = [running, favourite, done]
    result = plan(NOW, Limits(timedelta(days=1), 1), rows, [], listing(*rows))
    assert removed(result) == ["t3"]
    unkept = plan(NOW, Limits(timedelta(days=1), None, keep_favorites=False), rows, [], {})
    assert removed(unkept) == ["t2", "t3"]


def test_the_storage_cap_removes_the_oldest_until_the_files_fit() -> None:
    rows = [task(pk, days) for pk, days in ((1, 3), (2, 1), (3, 2), (4, 0.1))]
    files = listing(*rows)  # 8 files of 100 bytes
    result = plan(NOW, Limits(None, 450), rows, [], files)
    assert [(t.task_id, why) for t, why in result.tasks] == [("t1", "storage"), ("t3", "storage")]
    assert result.used_bytes - result.freed_bytes == 400
    assert not plan(NOW, Limits(None, 800), rows, [], files).tasks


def test_a_shared_file_goes_with_the_last_row_naming_it() -> None:
    # two tasks made the same picture (content-hash names): one file for both
    first, second = task(1, 40, name="same"), task(2, 1, name="same")
    result = plan(NOW, Limits(timedelta(days=30), None), [first, second], [], listing(first))
    assert removed(result) == ["t1"]
    assert not result.files and result.freed_bytes == 0


def test_an_unused_upload_goes_after_the_same_days_a_used_one_stays() -> None:
    unused = UploadFacts(1, "u1", NOW - timedelta(days=40), frozenset({("uploads", "u1.png")}))
    used = UploadFacts(2, "u2", NOW - timedelta(days=40), frozenset({("uploads", "u2.png")}))
    young = UploadFacts(3, "u3", NOW - timedelta(days=2), frozenset({("uploads", "u3.png")}))
    # the task using u2 is kept; the old one using u1 goes, so u1 is unused after it
    keeper = task(1, 5, references=frozenset({"u2"}))
    gone = task(2, 40, references=frozenset({"u1"}))
    rows = [keeper, gone]
    uploads = [unused, used, young]
    result = plan(NOW, Limits(timedelta(days=30), None), rows, uploads, listing(*rows, *uploads))
    assert [u.upload_id for u in result.uploads] == ["u1"]
    assert ("uploads", "u1.png") in result.files
    assert not plan(NOW, NO_LIMITS, rows, uploads, listing(*rows, *uploads)).uploads


def test_a_task_whose_image_a_queued_task_uses_stays() -> None:
    source = task(1, 40)
    queued = task(2, 0, active=True, references=frozenset({"i1"}))
    result = plan(NOW, Limits(timedelta(days=30), 1), [source, queued], [], {})
    assert not result.tasks


def test_files_no_row_names_are_swept_once_past_the_grace() -> None:
    kept = task(1, 1)
    files = listing(kept)
    files[("images", "stray.jpg")] = StoredFile("stray.jpg", 7, OLD)
    files[("images", "new.jpg")] = StoredFile("new.jpg", 9, NOW.timestamp())  # row to come
    result = plan(NOW, NO_LIMITS, [kept], [], files)
    assert result.orphans == {("images", "stray.jpg")} == set(result.files)
    assert result.freed_bytes == 7 and not result.tasks


def test_no_limits_remove_nothing() -> None:
    rows = [task(1, 4000), task(2, 3000)]
    result = plan(NOW, NO_LIMITS, rows, [], listing(*rows))
    assert result.empty and result.freed_bytes == 0
