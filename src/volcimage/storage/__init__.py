"""Where image files live: local directories or an S3-compatible bucket."""

from __future__ import annotations

from volcimage.core.config import Settings
from volcimage.storage.files import LocalStore, Store


def build_store(settings: Settings) -> Store:
    if settings.STORAGE_BACKEND == "s3":
        from volcimage.storage.s3 import S3Store  # boto3 comes with the [s3] extra only

        store = S3Store(settings)
        store.ensure_bucket()
        return store
    return LocalStore(settings.IMAGE_DIR, settings.THUMBNAIL_DIR, settings.upload_dir)
