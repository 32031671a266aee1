"""S3 repository: one object per key in a bucket of any S3-compatible server (path-style).

The port's guarantees hold as S3 gives them: a PUT (single or multipart) becomes visible
whole or not at all; `overwrite=False` asks first (HEAD) and then writes with
`If-None-Match: *`, so a server that supports conditional writes (AWS, MinIO, SeaweedFS)
also closes the race between the two. Every failure of the server or the network is one
RepositoryError naming the endpoint; a missing key is FileNotFoundError, as on a filesystem.

A missing bucket is not a missing key: S3 answers a HEAD of a key in a bucket that does
not exist with a bare 404, which would read as "no such WAL segment" and end a recovery
early. So every "not found" is told apart by asking for the bucket, and a missing bucket is
a RepositoryError ("the repository is missing"), never an absent key.

A multipart upload that was never completed (a killed `put` above 64 MiB) is invisible to
listings and reads; `strays` lists it and `remove_stray` aborts it (`drkit prune` does, once
it is a day old).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import uuid
from datetime import UTC

from drkit.adapters.repository.port import Entry, Stray, StrayKind
from drkit.adapters.s3.client import (
    MIB,
    S3Endpoint,
    error_code,
    is_not_found,
    make_client,
    s3_errors,
    transfer_config,
)
from drkit.domain.errors import ConfigError, RepositoryError
from drkit.domain.stack import RepositorySpec

SINGLE_PUT_LIMIT = 64 * MIB  # above this, multipart (boto3's TransferConfig)
CONDITIONAL_UNSUPPORTED = frozenset({"NotImplemented", "501"})
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})


class S3Repository:
    def __init__(self, spec: RepositorySpec, *, max_attempts: int = 5) -> None:
        if not spec.endpoint:
            raise ConfigError(f"repository {spec.name!r}: type s3 needs an endpoint (http://host:port)")
        if not spec.bucket:
            raise ConfigError(f"repository {spec.name!r}: type s3 needs a bucket")
        self.bucket = spec.bucket
        self.prefix = "/".join(p for p in spec.prefix.split("/") if p)
        self.endpoint = S3Endpoint(
            url=spec.endpoint.rstrip("/"),
            access_key=spec.access_key,
            secret_key=spec.secret_key,
            region=spec.region,
            max_attempts=max_attempts,
        )
        self.client = make_client(self.endpoint)

    @property
    def location(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{where} at {self.endpoint.url}"

    def _key(self, key: str) -> str:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise RepositoryError(f"invalid repository key {key!r}")
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        full = self._key(key)
        if not overwrite and self.exists(key):
            raise FileExistsError(f"{key} already exists in {self.location}")
        with s3_errors(self.endpoint, f"writing {key}", RepositoryError):
            if len(data) > SINGLE_PUT_LIMIT:
                self.client.upload_fileobj(io.BytesIO(data), self.bucket, full, Config=transfer_config())
                return
            if overwrite:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
                return
            self._put_if_absent(key, full, data)

    def _put_if_absent(self, key: str, full: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = error_code(exc)
            if code in PRECONDITION_FAILED:
                raise FileExistsError(f"{key} already exists in {self.location}") from exc
            if code not in CONDITIONAL_UNSUPPORTED:
                raise
            # An older server without conditional writes: the HEAD above is all we can do.
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        full = self._key(key)
        with s3_errors(self.endpoint, f"reading {key}", RepositoryError):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if self._absent(exc):
                    raise FileNotFoundError(f"{key} is not in {self.location}") from exc
                raise
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def _head(self, key: str) -> int | None:
        """The blob's size, or None when it does not exist."""
        from botocore.exceptions import ClientError

        full = self._key(key)
        with s3_errors(self.endpoint, f"looking up {key}", RepositoryError):
            try:
                return int(self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"])
            except ClientError as exc:
                if self._absent(exc):
                    return None
                raise

    def _absent(self, exc: BaseException) -> bool:
        """True when `exc` says the key does not exist; a missing bucket (or a bare 404 from
        one) raises: the whole repository is missing, not one key."""
        from botocore.exceptions import ClientError

        if error_code(exc) == "NoSuchBucket":
            raise self._missing() from exc
        if not is_not_found(exc):
            return False
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as again:
            if is_not_found(again) or error_code(again) == "NoSuchBucket":
                raise self._missing() from exc
            raise
        return True

    def _missing(self) -> RepositoryError:
        return RepositoryError(
            f"the repository is missing: bucket {self.bucket} does not exist at {self.endpoint.url}",
            hint="was it deleted, or is the configuration naming the wrong bucket or endpoint?",
        )

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        found = self._head(key)
        if found is None:
            raise FileNotFoundError(f"{key} is not in {self.location}")
        return found

    def list(self, prefix: str) -> list[str]:
        return [e.key for e in self.entries(prefix)]

    def entries(self, prefix: str) -> builtins.list[Entry]:
        """Every blob under `prefix` (a directory-like prefix: `a/b` means `a/b/...`)."""
        parts = [p for p in prefix.split("/") if p]
        full = "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)
        if full:
            full += "/"
        out: builtins.list[Entry] = []
        with s3_errors(self.endpoint, f"listing {prefix or '/'}", RepositoryError):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for item in page.get("Contents", []):
                    out.append(
                        Entry(
                            self._relative(item["Key"]),
                            int(item["Size"]),
                            item["LastModified"].astimezone(UTC),
                        )
                    )
        return sorted(out, key=lambda e: e.key)

    def delete(self, key: str) -> None:
        full = self._key(key)
        with s3_errors(self.endpoint, f"deleting {key}", RepositoryError):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def delete_tree(self, prefix: str) -> None:
        full = self._key(prefix) + "/"
        for key in self.list(prefix):
            self.delete(key)
        with s3_errors(self.endpoint, f"aborting unfinished uploads under {prefix}", RepositoryError):
            uploads = self.client.get_paginator("list_multipart_uploads")
            pages = uploads.paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )

    def strays(self, prefix: str) -> builtins.list[Stray]:
        """Unfinished multipart uploads under `prefix` (S3 has no links)."""
        full = self._key(prefix) + "/" if [p for p in prefix.split("/") if p] else self.prefix
        if full and not full.endswith("/"):
            full += "/"
        out: builtins.list[Stray] = []
        with s3_errors(self.endpoint, f"listing unfinished uploads under {prefix or '/'}", RepositoryError):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated")
                    out.append(
                        Stray(
                            self._relative(upload["Key"]),
                            StrayKind.UPLOAD,
                            "unfinished multipart upload (a write that was killed)",
                            initiated.astimezone(UTC) if initiated else None,
                            upload["UploadId"],
                        )
                    )
        return sorted(out, key=lambda s: s.key)

    def remove_stray(self, stray: Stray) -> None:
        if stray.kind is not StrayKind.UPLOAD:
            raise RepositoryError(f"{stray.key}: an S3 repository has no {stray.kind.value}")
        from botocore.exceptions import ClientError

        with s3_errors(self.endpoint, f"aborting the upload of {stray.key}", RepositoryError):
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(stray.key), UploadId=stray.handle
                )
            except ClientError as exc:
                if error_code(exc) not in ("NoSuchUpload", "404"):
                    raise

    def replace_if(self, key: str, data: bytes, *, expected: bytes) -> bool:
        """A PUT with `If-Match` the ETag read with the bytes compared: a lease another host
        wrote meanwhile is never overwritten, and a removed one never recreated. A server
        without conditional writes gets a plain PUT after the comparison."""
        from botocore.exceptions import ClientError

        full = self._key(key)
        with s3_errors(self.endpoint, f"renewing {key}", RepositoryError):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if self._absent(exc):
                    return False
                raise
            body = response["Body"]
            try:
                current = body.read()
            finally:
                body.close()
            if current != expected:
                return False
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data, IfMatch=response["ETag"])
            except ClientError as exc:
                code = error_code(exc)
                if code in PRECONDITION_FAILED or self._absent(exc):
                    return False
                if code not in CONDITIONAL_UNSUPPORTED:
                    raise
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
        return True

    def check_writable(self) -> None:
        from botocore.exceptions import ClientError

        with s3_errors(self.endpoint, f"checking bucket {self.bucket}", RepositoryError):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if is_not_found(exc) or error_code(exc) == "NoSuchBucket":
                    raise RepositoryError(
                        f"bucket {self.bucket} does not exist at {self.endpoint.url}",
                        hint="create it first (with versioning, so a deleted backup can be recovered)",
                    ) from exc
                raise
        key = f".drkit-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.put(key, b"probe")
            if self.get(key) != b"probe":
                raise RepositoryError(f"repository {self.location} returned different bytes")
        except BaseException:
            with contextlib.suppress(RepositoryError):
                self.delete(key)
            raise
        self.delete(key)
