"""An object store (MinIO, SeaweedFS, AWS S3) as the objects engine needs it: buckets,
versioning, the lifecycle rule for noncurrent versions, version listings, streamed reads,
writes (multipart for big objects) and deletes. Every failure is one OperationError line.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from drkit.adapters.s3.client import S3Endpoint, error_code, is_not_found, make_client, s3_errors
from drkit.domain.errors import ConfigError, NotFoundError
from drkit.domain.stack import HealthProbe, Service

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        LifecycleRuleOutputTypeDef,
        ObjectIdentifierTypeDef,
    )

LIFECYCLE_RULE_ID = "drkit-keep-noncurrent"
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a bucket's version listing: a version, or a delete marker."""

    key: str
    version_id: str
    last_modified: datetime
    is_latest: bool
    delete_marker: bool = False
    size: int = 0
    etag: str = ""


@dataclass(frozen=True)
class CurrentObject:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class ObjectBody:
    """A version being read: its headers, and its content as a stream of chunks."""

    content_type: str
    metadata: dict[str, str]
    size: int
    chunks: Iterator[bytes] = field(repr=False)


def endpoint_for(service: Service, *, max_attempts: int = 5, timeout: float | None = None) -> S3Endpoint:
    """The S3 endpoint of an `s3` service: its `url` (path-style), access key and secret key.

    The access key is `service.access_key` or the user part of the URL
    (`http://ACCESS_KEY@127.0.0.1:8333`); the secret key is `service.secret_key` or
    `service.password`.
    """
    if not service.url:
        raise ConfigError(f"services.{service.name}.url: an s3 service needs its endpoint URL")
    parts = urlsplit(service.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"services.{service.name}.url: {service.url!r} is not an http(s) URL")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    url = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    access = service.access_key or (unquote(parts.username) if parts.username else None)
    secret = service.secret_key or service.password
    extra: dict[str, Any] = {"read_timeout": timeout, "connect_timeout": timeout} if timeout else {}
    return S3Endpoint(url, access, secret, max_attempts=max_attempts, **extra)


def configured_buckets(service: Service) -> tuple[str, ...]:
    """`service.buckets`, or `?buckets=a,b` in the URL; empty means every bucket."""
    listed = service.buckets
    if listed:
        return listed
    query = parse_qs(urlsplit(service.url or "").query).get("buckets", [""])[0]
    return tuple(b for b in query.split(",") if b)


def s3_probe(service: Service, probe: HealthProbe, timeout: float) -> str:
    """Health probe: a signed ListBuckets, which needs the gateway, its metadata store and
    the credentials to work (a plain GET of /healthz answers before any of that)."""
    store = ObjectStore(endpoint_for(service, max_attempts=1, timeout=timeout))
    return f"S3 answered: {len(store.buckets())} bucket(s)"


class ObjectStore:
    def __init__(self, endpoint: S3Endpoint) -> None:
        self.endpoint = endpoint
        self.client = make_client(endpoint)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        with s3_errors(self.endpoint, what):
            yield

    def buckets(self) -> list[str]:
        with self._errors("listing buckets"):
            return sorted(b["Name"] for b in self.client.list_buckets().get("Buckets", []) if "Name" in b)

    def server(self) -> str:
        """The server's name and version from its `Server` header, when it gives one."""
        with self._errors("listing buckets"):
            response = self.client.list_buckets()
        return str(response["ResponseMetadata"].get("HTTPHeaders", {}).get("server", "unknown"))

    def bucket_exists(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors(f"looking up bucket {bucket}"):
            try:
                self.client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if is_not_found(exc) or error_code(exc) == "NoSuchBucket":
                    return False
                raise
        return True

    def create_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        with self._errors(f"creating bucket {bucket}"):
            try:
                self.client.create_bucket(Bucket=bucket)
            except ClientError as exc:
                if error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def versioning(self, bucket: str) -> str:
        """`Enabled`, `Suspended`, or `` (never enabled)."""
        with self._errors(f"reading the versioning of {bucket}"):
            return str(self.client.get_bucket_versioning(Bucket=bucket).get("Status", ""))

    def enable_versioning(self, bucket: str) -> None:
        with self._errors(f"enabling versioning on {bucket}"):
            self.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def keep_noncurrent(self, bucket: str, keep: int) -> str | None:
        """Add (once) a lifecycle rule keeping the newest `keep` noncurrent versions; the
        bucket's other rules stay. Returns a warning when the server cannot do it."""
        from botocore.exceptions import ClientError

        rule: LifecycleRuleOutputTypeDef = {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": keep},
        }
        with self._errors(f"setting a lifecycle rule on {bucket}"):
            try:
                rules = self._lifecycle_rules(bucket)
                if any(r.get("ID") == LIFECYCLE_RULE_ID for r in rules):
                    return None
                self.client.put_bucket_lifecycle_configuration(
                    Bucket=bucket,
                    LifecycleConfiguration={"Rules": [*rules, rule]},
                )
            except ClientError as exc:  # the server answered: it cannot, or may not; not fatal
                return f"{bucket}: no lifecycle rule for noncurrent versions ({error_code(exc)})"
        return None

    def _lifecycle_rules(self, bucket: str) -> list[LifecycleRuleOutputTypeDef]:
        from botocore.exceptions import ClientError

        try:
            return list(self.client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", []))
        except ClientError as exc:
            if error_code(exc) in ("NoSuchLifecycleConfiguration", "404"):
                return []
            raise

    def versions(self, bucket: str, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix`; per key, newest first."""
        with self._errors(f"listing the versions in {bucket}"):
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for v in page.get("Versions", []):
                    yield ObjectVersion(
                        key=v["Key"],
                        version_id=str(v.get("VersionId") or "null"),
                        last_modified=v["LastModified"].astimezone(UTC),
                        is_latest=bool(v.get("IsLatest")),
                        size=int(v.get("Size", 0)),
                        etag=str(v.get("ETag", "")).strip('"'),
                    )
                for d in page.get("DeleteMarkers", []):
                    yield ObjectVersion(
                        key=d["Key"],
                        version_id=str(d.get("VersionId") or "null"),
                        last_modified=d["LastModified"].astimezone(UTC),
                        is_latest=bool(d.get("IsLatest")),
                        delete_marker=True,
                    )

    def current(self, bucket: str, prefix: str = "") -> dict[str, CurrentObject]:
        """The bucket's current objects under `prefix` (what a plain listing shows)."""
        out: dict[str, CurrentObject] = {}
        with self._errors(f"listing {bucket}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    out[key] = CurrentObject(key, int(item["Size"]), str(item.get("ETag", "")).strip('"'))
        return out

    @contextmanager
    def read(self, bucket: str, key: str, version_id: str | None = None) -> Iterator[ObjectBody]:
        """Open one version (or the current object) for reading in chunks."""
        from botocore.exceptions import ClientError

        what = f"reading {bucket}/{key}" + (f" version {version_id}" if version_id else "")
        with self._errors(what):
            try:
                extra = {"VersionId": version_id} if version_id and version_id != "null" else {}
                response = self.client.get_object(Bucket=bucket, Key=key, **extra)  # type: ignore[arg-type]
            except ClientError as exc:
                if is_not_found(exc):
                    raise NotFoundError(
                        f"{bucket}/{key} ({version_id or 'current'}) no longer exists"
                    ) from exc
                raise
            body = response["Body"]
            try:
                yield ObjectBody(
                    content_type=str(response.get("ContentType") or "binary/octet-stream"),
                    metadata={str(k): str(v) for k, v in response.get("Metadata", {}).items()},
                    size=int(response.get("ContentLength", 0)),
                    chunks=body.iter_chunks(READ_CHUNK),
                )
            finally:
                body.close()

    def sha256_of(self, bucket: str, key: str) -> str:
        digest = hashlib.sha256()
        with self.read(bucket, key) as body:
            for chunk in body.chunks:
                digest.update(chunk)
        return digest.hexdigest()

    def put(self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> str:
        """One PUT; returns the ETag the server gave."""
        with self._errors(f"writing {bucket}/{key}"):
            response = self.client.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata
            )
        return str(response.get("ETag", "")).strip('"')

    def put_parts(
        self, bucket: str, key: str, parts: Iterator[bytes], content_type: str, metadata: dict[str, str]
    ) -> str:
        """A multipart upload of the given parts (each >= 5 MiB but the last); aborted on failure."""
        with self._errors(f"writing {bucket}/{key} (multipart)"):
            upload = self.client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
            upload_id = upload["UploadId"]
            try:
                done: list[CompletedPartTypeDef] = []
                for number, data in enumerate(parts, start=1):
                    answer = self.client.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                    )
                    done.append({"ETag": answer["ETag"], "PartNumber": number})
                response = self.client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
                )
            except BaseException:
                self._abort(bucket, key, upload_id)
                raise
        return str(response.get("ETag", "")).strip('"')

    def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # The server is gone or refuses: its own cleanup of stale uploads takes over.
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    def delete(self, bucket: str, key: str) -> None:
        """Delete the current object: in a versioned bucket, a delete marker (recoverable)."""
        with self._errors(f"deleting {bucket}/{key}"):
            self.client.delete_object(Bucket=bucket, Key=key)

    def remove_bucket(self, bucket: str) -> None:
        """Delete every version and delete marker in `bucket`, then the bucket itself: only for
        a bucket drkit made for itself (a deep verify's scratch bucket)."""
        with self._errors(f"removing bucket {bucket}"):
            if not self.bucket_exists(bucket):
                return
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=bucket)
            for page in pages:
                entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": e["Key"], "VersionId": str(e.get("VersionId") or "null")}
                    for e in entries
                    if "Key" in e
                ]
                if batch:
                    self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            self.client.delete_bucket(Bucket=bucket)
