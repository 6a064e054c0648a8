"""Local file storage: atomic writes under content-hash names (originals, thumbnails and
uploaded reference images)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol


def hashed_path(root: Path, digest: str, suffix: str) -> Path:
    """`root/ab/abcdef….suffix`: two-level fan-out keeps directories small."""
    return root / digest[:2] / f"{digest}{suffix}"


HOST = socket.gethostname()
TEMP_PREFIX = ".tmp-"


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory.

    A crash leaves either the old state or the whole file, never a torn one; the temp file of a
    killed process is named after its host and pid, so the next runner can remove it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{TEMP_PREFIX}{HOST}-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    try:
        # mkstemp makes it 0600; nginx (another user) sends it after X-Accel-Redirect
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


Area = Literal["images", "thumbnails", "uploads"]
AREAS: tuple[Area, ...] = ("images", "thumbnails", "uploads")


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    modified: float  # seconds since the epoch: a file written again (reused) changes it


class Store(Protocol):
    """Where image files live: the local disk (LocalStore) or an S3-compatible bucket."""

    def save_original(self, data: bytes, digest: str, suffix: str) -> str: ...
    def save_thumbnail(self, data: bytes, digest: str) -> str: ...
    def save_upload(self, data: bytes, digest: str, suffix: str) -> str: ...
    def read(self, area: Area, key: str) -> bytes: ...
    def exists(self, area: Area, key: str) -> bool: ...
    def local_path(self, area: Area, key: str) -> Path | None: ...
    def download_url(
        self, area: Area, key: str, media_type: str, filename: str | None, disposition: str
    ) -> str | None: ...
    def download_origin(self) -> str | None: ...
    def delete(self, original_key: str, thumbnail_key: str) -> None: ...
    def files(self, area: Area) -> Iterator[StoredFile]: ...
    def remove(self, area: Area, key: str, modified: float | None = None) -> bool: ...
    def problem(self, min_free_bytes: int) -> str | None: ...
    def remove_abandoned_temp_files(self) -> int: ...


class LocalStore:
    """Originals and thumbnails on the local disk, addressed by relative keys (`ab/abcd….jpg`)."""

    def __init__(self, image_dir: Path, thumbnail_dir: Path, upload_dir: Path) -> None:
        self.image_dir = image_dir.resolve()
        self.thumbnail_dir = thumbnail_dir.resolve()
        self.upload_dir = upload_dir.resolve()

    def save_original(self, data: bytes, digest: str, suffix: str) -> str:
        return self._save(self.image_dir, data, digest, suffix)

    def save_thumbnail(self, data: bytes, digest: str) -> str:
        return self._save(self.thumbnail_dir, data, digest, ".webp")

    def _root(self, area: Area) -> Path:
        roots = {"images": self.image_dir, "thumbnails": self.thumbnail_dir}
        return roots.get(area, self.upload_dir)

    def local_path(self, area: Area, key: str) -> Path:
        return self._resolve(self._root(area), key)

    def read(self, area: Area, key: str) -> bytes:
        return self.local_path(area, key).read_bytes()

    def exists(self, area: Area, key: str) -> bool:
        return self.local_path(area, key).is_file()

    def download_url(
        self, area: Area, key: str, media_type: str, filename: str | None, disposition: str
    ) -> str | None:
        return None  # the app (or nginx) sends local files itself

    def download_origin(self) -> str | None:
        return None

    def problem(self, min_free_bytes: int) -> str | None:
        """What keeps files from being stored (None: nothing). A file is written and removed:
        a mode check passes for root on a read-only disk."""
        for root in (self.image_dir, self.thumbnail_dir, self.upload_dir):
            try:
                with tempfile.TemporaryFile(dir=root, prefix=f"{TEMP_PREFIX}{HOST}-{os.getpid()}-"):
                    pass
                free = shutil.disk_usage(root).free
            except OSError as error:
                return f"{root.name} not writable ({error.strerror or type(error).__name__})"
            if free < min_free_bytes:
                return f"disk full: {free // 2**20} MB free under {root.name}"
        return None

    def save_upload(self, data: bytes, digest: str, suffix: str) -> str:
        return self._save(self.upload_dir, data, digest, suffix)

    def delete(self, original_key: str, thumbnail_key: str) -> None:
        self.remove("images", original_key)
        self.remove("thumbnails", thumbnail_key)

    def files(self, area: Area) -> Iterator[StoredFile]:
        """Every stored file of the area; temp files of writes under way are not."""
        root = self._root(area)
        for path in root.rglob("*"):
            if path.name.startswith(TEMP_PREFIX):
                continue
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                stat = path.stat()
                if path.is_file():
                    yield StoredFile(path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime)

    def remove(self, area: Area, key: str, modified: float | None = None) -> bool:
        """Removes the file, unless `modified` is given and the file has changed since (a
        new row reused it). True: it is gone."""
        path = self.local_path(area, key)
        try:
            if modified is not None and path.stat().st_mtime != modified:
                return False
            path.unlink()
        except FileNotFoundError:
            pass
        return True

    def remove_abandoned_temp_files(self) -> int:
        """Deletes temp files left by dead processes of this host; returns how many."""
        removed = 0
        for root in (self.image_dir, self.thumbnail_dir, self.upload_dir):
            for path in root.rglob(f"{TEMP_PREFIX}{HOST}-*"):
                pid = path.name.removeprefix(f"{TEMP_PREFIX}{HOST}-").split("-", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    remove_quietly(path)
                    removed += 1
        return removed

    @staticmethod
    def _save(root: Path, data: bytes, digest: str, suffix: str) -> str:
        path = hashed_path(root, digest, suffix)
        try:  # same name, same bytes: rewrite nothing, but mark it used (retention's sweep)
            os.utime(path)
        except FileNotFoundError:
            write_atomic(path, data)
        return path.relative_to(root).as_posix()

    @staticmethod
    def _resolve(root: Path, key: str) -> Path:
        path = (root / key).resolve()
        if not path.is_relative_to(root):
            raise ValueError("storage key escapes its directory")
        return path
