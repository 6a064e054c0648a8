"""Image files in an S3-compatible bucket (AWS S3, Volcengine TOS, MinIO), for several hosts.

Keys are the local store's keys under `<S3_PREFIX><area>/`: content-hash names, so a write is
idempotent and objects are never rewritten. Downloads go to presigned URLs after the app's
checks (or through the app, with S3_PRESIGNED_DOWNLOADS=false).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from volcimage.core.config import Settings
from volcimage.storage.files import Area, StoredFile, hashed_path

PRESIGN_SECONDS = 3600


class S3Store:
    def __init__(self, settings: Settings) -> None:
        key_id, secret = settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY
        self.bucket = settings.S3_BUCKET
        self.prefix = settings.S3_PREFIX
        self.presign = settings.S3_PRESIGNED_DOWNLOADS
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.S3_ENDPOINT_URL,
            region_name=settings.S3_REGION,
            aws_access_key_id=key_id.get_secret_value() if key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def ensure_bucket(self) -> None:
        """Creates the bucket if it is missing (MinIO, a fresh TOS or test server)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def _object(self, area: Area, key: str) -> str:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError("storage key escapes its area")
        return f"{self.prefix}{area}/{key}"

    def _save(self, area: Area, data: bytes, digest: str, suffix: str, mime: str) -> str:
        key = hashed_path(Path(), digest, suffix).as_posix()
        self.client.put_object(
            Bucket=self.bucket, Key=self._object(area, key), Body=data, ContentType=mime
        )
        return key

    def save_original(self, data: bytes, digest: str, suffix: str) -> str:
        mime = "image/png" if suffix == ".png" else "image/jpeg"
        return self._save("images", data, digest, suffix, mime)

    def save_thumbnail(self, data: bytes, digest: str) -> str:
        return self._save("thumbnails", data, digest, ".webp", "image/webp")

    def save_upload(self, data: bytes, digest: str, suffix: str) -> str:
        mime = "image/png" if suffix == ".png" else "image/jpeg"
        return self._save("uploads", data, digest, suffix, mime)

    def read(self, area: Area, key: str) -> bytes:
        answer = self.client.get_object(Bucket=self.bucket, Key=self._object(area, key))
        return bytes(answer["Body"].read())

    def exists(self, area: Area, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(area, key))
        except ClientError:
            return False
        return True

    def local_path(self, area: Area, key: str) -> Path | None:
        return None

    def download_url(
        self, area: Area, key: str, media_type: str, filename: str | None, disposition: str
    ) -> str | None:
        if not self.presign:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self._object(area, key),
            "ResponseContentType": media_type,
        }
        if filename:
            params["ResponseContentDisposition"] = f'{disposition}; filename="{filename}"'
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
        )
        return url

    def download_origin(self) -> str | None:
        """Where presigned downloads point (scheme://host[:port], the bucket's own host in
        virtual-host style): the page's CSP lets images come from there. Signing is local."""
        if not self.presign:
            return None
        url = urlsplit(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._object("images", "x")}
            )
        )
        return f"{url.scheme}://{url.netloc}"

    def delete(self, original_key: str, thumbnail_key: str) -> None:
        self.remove("images", original_key)
        self.remove("thumbnails", thumbnail_key)

    def files(self, area: Area) -> Iterator[StoredFile]:
        start = f"{self.prefix}{area}/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"].removeprefix(start)
                yield StoredFile(key, int(item["Size"]), item["LastModified"].timestamp())

    def remove(self, area: Area, key: str, modified: float | None = None) -> bool:
        """Deletes the object, unless `modified` is given and it was written since."""
        name = self._object(area, key)
        if modified is not None:
            try:
                found = self.client.head_object(Bucket=self.bucket, Key=name)
            except ClientError:
                return True  # gone already
            # HEAD says whole seconds; a listing may say milliseconds
            if int(found["LastModified"].timestamp()) > int(modified):
                return False
        self.client.delete_object(Bucket=self.bucket, Key=name)
        return True

    def problem(self, min_free_bytes: int) -> str | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            return f"bucket unreachable ({type(error).__name__})"
        return None

    def remove_abandoned_temp_files(self) -> int:
        return 0  # object writes are atomic: nothing half-written to clean up
