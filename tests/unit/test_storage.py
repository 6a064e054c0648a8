"""Storage: atomic content-hash files, embedded parameters, thumbnails, damaged downloads."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image as PILImage

from volcimage.core.errors import UpstreamError
from volcimage.images.processing import prepare, read_metadata
from volcimage.storage.files import LocalStore, write_atomic


def picture(fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 90)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_prepare_embeds_parameters_losslessly_and_thumbnails(fmt: str, mime: str) -> None:
    raw = picture(fmt)
    params = {"prompt": "猫 <b>bold</b>", "seed": 3}
    stored = prepare(raw, params, thumb_size=100, quality=80)
    assert stored.mime_type == mime and (stored.width, stored.height) == (640, 480)
    assert read_metadata(stored.data) == params
    with PILImage.open(io.BytesIO(stored.data)) as a, PILImage.open(io.BytesIO(raw)) as b:
        assert a.tobytes() == b.tobytes()  # pixels untouched
    with PILImage.open(io.BytesIO(stored.thumbnail)) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (100, 75)
    assert len(stored.digest) == 64


def test_truncated_download_is_a_retryable_error() -> None:
    raw = picture("JPEG")
    with pytest.raises(UpstreamError) as info:
        prepare(raw[: len(raw) // 2], {}, 100, 80)
    assert info.value.retryable and info.value.upstream_code == "BadImage"


def test_not_an_image_is_refused() -> None:
    with pytest.raises(UpstreamError):
        prepare(b"<html>expired</html>", {}, 100, 80)


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["b.bin"]


def test_written_files_are_readable_by_the_proxy_user(tmp_path: Path) -> None:
    """nginx runs as another user than the app and reads the files for X-Accel-Redirect."""
    target = tmp_path / "ab" / "abc.jpg"
    write_atomic(target, b"bytes")
    assert target.stat().st_mode & 0o777 == 0o644


def test_local_store_keys_are_relative_and_cannot_escape(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "img", tmp_path / "thumb", tmp_path / "up")
    key = store.save_original(b"data", "ab" + "0" * 62, ".jpg")
    assert key == "ab/ab" + "0" * 62 + ".jpg"
    assert store.read("images", key) == b"data"
    with pytest.raises(ValueError, match="escapes"):
        store.local_path("images", "../../etc/passwd")
    store.delete(key, "missing.webp")
    assert not store.exists("images", key)


def test_a_file_saved_again_is_marked_used_so_retention_spares_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "i", tmp_path / "t", tmp_path / "u")
    key = store.save_original(b"same bytes", "ab" * 32, ".jpg")
    store.save_thumbnail(b"thumb", "ab" * 32)
    path = store.local_path("images", key)
    os.utime(path, (1_000_000, 1_000_000))  # long ago
    (path.parent / ".tmp-host-1-x.jpg").write_bytes(b"half")  # a write under way
    listed = {f.key: f for f in store.files("images")}
    assert list(listed) == [key] and listed[key].size == 10
    assert [f.key for f in store.files("thumbnails")] == [f"ab/{'ab' * 32}.webp"]

    store.save_original(b"same bytes", "ab" * 32, ".jpg")  # a new row reuses the file
    assert not store.remove("images", key, listed[key].modified)
    assert path.exists()
    assert store.remove("images", key, path.stat().st_mtime)
    assert not path.exists() and store.remove("images", key)  # gone already: gone
