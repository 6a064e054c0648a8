"""Reference images: uploads (sniffed, bounded, cleaned) and image-to-image through the app."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from tests.support import generate, jpeg_claiming, upload, wait_for_task
from volcimage.core.config import Settings
from volcimage.emulator.render import render_image

pytestmark = (
    pytest.mark.one_database
)  # the files are the point; the queries are those every upload makes

API = "/api/v1"


def jpeg_with_exif(width: int, height: int) -> bytes:
    picture = PILImage.open(io.BytesIO(render_image("exif", 1, width, height)))
    exif = PILImage.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90°
    out = io.BytesIO()
    picture.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


async def test_upload_is_sniffed_cleaned_and_served(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    files = {"file": ("holiday.png", jpeg_with_exif(300, 200), "image/png")}  # the name lies
    response = await app_client.post(f"{API}/uploads", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mime_type"] == "image/jpeg", "type comes from the bytes"
    assert (body["width"], body["height"]) == (200, 300), "EXIF orientation applied"
    stored = await app_client.get(body["url"])
    assert b"SecretCam" not in stored.content and b"Exif" not in stored.content
    with PILImage.open(io.BytesIO(stored.content)) as picture:
        assert picture.size == (200, 300) and not picture.getexif()
    thumb = await app_client.get(body["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/webp"
    assert len(list(settings.upload_dir.rglob("*.jpg"))) == 1


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("HEIF", "image/jpeg"), ("WEBP", "image/png"), ("BMP", "image/png"), ("TIFF", "image/png")],
)
async def test_heic_webp_bmp_and_tiff_are_taken_and_converted(
    app_client: httpx.AsyncClient, fmt: str, mime: str
) -> None:
    """The upstream takes JPEG and PNG: a phone's HEIC becomes a JPEG, the others a PNG."""
    picture = PILImage.open(io.BytesIO(render_image("a phone photo", 1, 320, 240)))
    out = io.BytesIO()
    picture.save(out, fmt)
    files = {"file": ("photo." + fmt.lower(), out.getvalue(), "application/octet-stream")}
    response = await app_client.post(f"{API}/uploads", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mime_type"] == mime and (body["width"], body["height"]) == (320, 240)
    stored = await app_client.get(body["url"])
    with PILImage.open(io.BytesIO(stored.content)) as kept:
        assert kept.format == mime.split("/")[1].upper()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a-not-really", "not a picture"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a picture"),
        ("tiny", "at least 15 px"),
        ("thin", "aspect ratio"),
        ("bomb", "too many pixels"),
        ("huge", "at most"),
    ],
)
async def test_bad_uploads_are_400_and_keep_nothing(
    make_studio: Any, data: bytes | str, message: str
) -> None:
    async with make_studio(MAX_UPLOAD_MB=1) as studio:
        if data == "tiny":
            data = render_image("t", 1, 10, 10, fmt="png")
        elif data == "thin":
            data = render_image("t", 1, 1700, 100, fmt="png")
        elif data == "bomb":  # 8000×8000 of one colour: tiny file, 64 M pixels
            out = io.BytesIO()
            PILImage.new("L", (8000, 8000)).save(out, "PNG")
            data = out.getvalue()
        elif data == "huge":
            data = render_image("noise", 1, 1, 1, fmt="png") + b"\0" * (1024 * 1024 + 10)
        assert isinstance(data, bytes)
        files = {"file": ("x.png", data, "image/png")}
        response = await studio.client.post(f"{API}/uploads", files=files)
        assert response.status_code == 400, response.text
        assert response.json()["details"]["field"] == "file"
        assert response.json()["details"]["reason"]
        assert message in response.json()["message"]
        assert not list(studio.settings.upload_dir.rglob("*.*"))


@pytest.mark.parametrize(("width", "height"), [(12000, 12000), (7000, 7000)])
async def test_a_picture_over_the_pixel_limit_is_called_that(
    app_client: httpx.AsyncClient, width: int, height: int
) -> None:
    """Not "not a picture that can be read": Pillow refuses one over twice its limit on open."""
    files = {"file": ("big.jpg", jpeg_claiming(width, height), "image/jpeg")}
    response = await app_client.post(f"{API}/uploads", files=files)
    assert response.status_code == 400, response.text
    body = response.json()
    assert "too many pixels" in body["message"] and "6000×6000" in body["message"]
    details = body["details"]
    assert details["reason"] == "too_many_pixels"
    assert details["pixels"] == width * height and details["max_pixels"] == 6000 * 6000


async def test_a_file_over_the_limit_is_told_its_real_size_in_mb(make_studio: Any) -> None:
    async with make_studio(MAX_UPLOAD_MB=1) as studio:
        data = render_image("noise", 1, 1, 1, fmt="png") + b"\0" * (1024 * 1024 + 40_000)
        files = {"file": ("x.png", data, "image/png")}
        response = await studio.client.post(f"{API}/uploads", files=files)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["message"] == "The file is 1.1 MB; at most 1 MB are accepted"
        assert body["details"] == {
            "field": "file",
            "reason": "too_large",
            "size": len(data),
            "max_bytes": 1024 * 1024,
        }
        models = (await studio.client.get(f"{API}/models")).json()
        assert models["uploads"]["max_bytes"] == 1024 * 1024


async def test_seededit_edits_an_uploaded_image(app_client: httpx.AsyncClient) -> None:
    ref = await upload(app_client, 900, 1200)
    created = await generate(
        app_client, model="seededit-3.0", prompt="make it snow", reference_images=[ref], scale=6
    )
    task = await wait_for_task(app_client, created["task_id"])
    assert task["status"] == "completed", task
    assert task["params"]["reference_images"] == [{"kind": "upload", "id": ref}]
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (864, 1152)


async def test_a_stored_image_can_be_a_reference(app_client: httpx.AsyncClient) -> None:
    first = await wait_for_task(app_client, (await generate(app_client))["task_id"])
    image_id = first["images"][0]["image_id"]
    ref = await upload(app_client, 1024, 1024)
    created = await generate(
        app_client,
        model="seedream-4.0",
        prompt="combine them",
        reference_images=[image_id, ref],
    )
    task = await wait_for_task(app_client, created["task_id"])
    assert task["status"] == "completed", task
    kinds = [r["kind"] for r in task["params"]["reference_images"]]
    assert kinds == ["image", "upload"]
    jimeng = await generate(app_client, model="jimeng-4.0", prompt="x", reference_images=[ref])
    assert (await wait_for_task(app_client, jimeng["task_id"]))["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "seededit-3.0"}, "takes exactly 1 reference image"),
        ({"model": "seedream-3.0", "reference_images": ["x"]}, "does not take reference images"),
        ({"model": "jimeng-4.0", "reference_images": ["x"] * 11}, "takes 0–10"),
        ({"model": "seedream-4.0", "reference_images": ["nope"]}, "does not exist"),
        (
            {"model": "seededit-3.0", "reference_images": ["x"], "width": 1024, "height": 1024},
            "follows the reference image",
        ),
    ],
)
async def test_reference_rules_are_400s(
    app_client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await app_client.post(f"{API}/generate", json={"prompt": "edit", **body})
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
