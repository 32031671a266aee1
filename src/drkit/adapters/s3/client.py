"""One way to talk to any S3-compatible server (MinIO, SeaweedFS, AWS): a boto3 client with
path-style addressing, timeouts and retries, and one clear line for every failure.

botocore retries throttling, 5xx answers, timeouts and refused connections itself (the
"standard" mode: exponential backoff with jitter). What still fails after that becomes one
DrkitError naming the endpoint ("cannot reach S3 at http://127.0.0.1:8333: connection
refused"), never a botocore traceback.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as bce
from botocore.config import Config

from drkit.domain.errors import OperationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
CREDENTIAL_CODES = frozenset(
    {"403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "Forbidden"}
)
THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"})
MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
CLIENT_VERSION = f"boto3 {boto3.__version__}"


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3 server is and how to sign for it (secrets already resolved)."""

    url: str
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    max_attempts: int = 5  # botocore counts the first try
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_connections: int = 32


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One session per process: it loads the service model once (a new one costs ~0.3 s)."""
    return boto3.session.Session()


def make_client(endpoint: S3Endpoint) -> S3Client:
    config = Config(
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": endpoint.max_attempts},
        connect_timeout=endpoint.connect_timeout,
        read_timeout=endpoint.read_timeout,
        max_pool_connections=endpoint.max_connections,
        signature_version="s3v4",
        # S3-compatible servers differ in their support of the newer trailing checksums.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    with _SESSION_LOCK:  # a Session is not thread-safe; the clients it makes are
        client: S3Client = _session().client(
            "s3",
            endpoint_url=endpoint.url,
            region_name=endpoint.region,
            aws_access_key_id=endpoint.access_key,
            aws_secret_access_key=endpoint.secret_key,
            config=config,
        )
    return client


def transfer_config(part_size: int = 16 * MIB) -> TransferConfig:
    """Multipart above 64 MiB, in parts of `part_size`, four at a time."""
    return TransferConfig(
        multipart_threshold=64 * MIB, multipart_chunksize=part_size, max_concurrency=4, use_threads=True
    )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, bce.ClientError):
        error: Any = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or str(status or "")
    return ""


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def etag_is_md5(etag: str) -> bool:
    """True when an ETag is a plain MD5 (single-part upload, no SSE-KMS): comparable to ours."""
    return bool(MD5_ETAG.match(etag.strip('"')))


def describe(exc: BaseException, endpoint: S3Endpoint, what: str) -> str:
    """One line for an operator: what failed, where, and the likely reason."""
    url = endpoint.url
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectionClosedError | bce.ProxyConnectionError):
        return f"cannot reach S3 at {url}: {_connection_reason(exc)} ({what})"
    if isinstance(exc, bce.ConnectTimeoutError):
        return (
            f"cannot reach S3 at {url}: connection timed out after {endpoint.connect_timeout:.0f}s ({what})"
        )
    if isinstance(exc, bce.ReadTimeoutError):
        return f"S3 at {url} did not answer within {endpoint.read_timeout:.0f}s ({what})"
    if isinstance(exc, bce.ResponseStreamingError | bce.IncompleteReadError):
        return f"S3 at {url} broke off the transfer ({what}): {_connection_reason(exc)}"
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return f"no credentials for S3 at {url}: configure access_key and secret_key ({what})"
    if isinstance(exc, bce.ClientError):
        return _describe_client_error(exc, endpoint, what)
    return f"S3 at {url}: {what} failed: {_first_line(exc)}"


def _describe_client_error(exc: bce.ClientError, endpoint: S3Endpoint, what: str) -> str:
    code = error_code(exc)
    url = endpoint.url
    message = str(exc.response.get("Error", {}).get("Message", "") or "").strip()
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"):
        return f"S3 at {url} refused the credentials (access key {endpoint.access_key!r}): {code} ({what})"
    if code in CREDENTIAL_CODES:
        return (
            f"S3 at {url} denied {what} (HTTP 403{'' if code == '403' else ' ' + code}): wrong credentials "
            f"(access key {endpoint.access_key!r}) or missing permissions"
        )
    if code == "NoSuchBucket":
        bucket = exc.response.get("Error", {}).get("BucketName") or ""
        return f"S3 at {url}: bucket {bucket or '(named in the configuration)'} does not exist ({what})"
    if code in THROTTLE_CODES:
        return f"S3 at {url} kept throttling requests ({code}) during {what}, even after retries"
    detail = f"{code}: {message}" if message else code
    return f"S3 at {url}: {what} failed: {detail}"


def _connection_reason(exc: BaseException) -> str:
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if "reset" in text:
        return "connection reset"
    if "timed out" in text:
        return "timed out"
    return _first_line(exc)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


S3_FAILURES: tuple[type[BaseException], ...] = (bce.BotoCoreError, bce.ClientError)


@contextmanager
def s3_errors(
    endpoint: S3Endpoint, what: str, error: type[OperationError] = OperationError
) -> Iterator[None]:
    """Turn whatever botocore raises inside into `error` with one clear line."""
    try:
        yield
    except S3_FAILURES as exc:
        raise error(describe(exc, endpoint, what)) from exc
