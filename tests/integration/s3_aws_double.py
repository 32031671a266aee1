"""What AWS S3 does and SeaweedFS 4.48 cannot, as a test double: a proxy in front of the real
SeaweedFS that forwards every request as sent (signature and all, so SeaweedFS still checks
the credentials) and adds AWS's behaviour for

- lifecycle transitions (SeaweedFS answers 501 NotImplemented): the rules are kept as AWS
  keeps them, and `age(days)` applies them as AWS would after that many days, reading each
  object's tags from SeaweedFS to match a rule's tag filter;
- the archive tiers (GLACIER, DEEP_ARCHIVE) of transitioned objects: a GET is refused,
  RestoreObject (POST ?restore, which SeaweedFS answers 405) is accepted and completes after
  `restore_polls` HEADs, HEAD shows `x-amz-storage-class` and `x-amz-restore`, listings
  show the storage class;
- optionally a server that accepts Object Lock retention and does not enforce it
  (`enforce_lock=False`: a refused delete of a version is answered 204 and the version is
  gone afterwards), as SeaweedFS 3.97 did (seaweedfs/seaweedfs#7194).

It is no more lenient than AWS: requests SeaweedFS refuses for their credentials are refused
as they are; a GET of an archived object without a finished restore is 403; a restore of
an object that is not archived is 403; a malformed restore request is 400; a transition to
STANDARD_IA before 30 days is 400. Every answer it makes itself is one AWS documents (the
constants below name where: the S3 API reference, as bundled in botocore's service model,
and the S3 user guide).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from drkit.infra.ports import free_port

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
API = "https://docs.aws.amazon.com/AmazonS3/latest/API"
GUIDE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide"

# GetObject on an archived object: "this operation returns an InvalidObjectState error"
# (API_GetObject.html, "Storage classes"; the InvalidObjectState shape: 403, StorageClass).
NOT_RESTORED = (403, "InvalidObjectState", "The operation is not valid for the object's storage class")
# RestoreObject on an object that is not archived (s3tools/s3cmd#1375, as AWS answers it).
NOT_ARCHIVED = (403, "InvalidObjectState", "Restore is not allowed for the object's current storage class")
# RestoreObject: "Code: RestoreAlreadyInProgress ... HTTP Status Code: 409 Conflict" (API_RestoreObject.html)
IN_PROGRESS = (409, "RestoreAlreadyInProgress", "Object restore is already in progress")
MALFORMED = (400, "MalformedXML", "The XML you provided was not well-formed or did not validate")
# PutBucketLifecycleConfiguration: transitions to STANDARD_IA / ONEZONE_IA need 30 days
# (lifecycle-transition-general-considerations.html, "Minimum days for transition").
IA_TOO_SOON = "'Days' in Transition action must be greater than or equal to 30 for storageClass '{}'"
ARCHIVE = ("GLACIER", "DEEP_ARCHIVE")


def error_xml(code: str, message: str, **extra: str) -> bytes:
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"{more}<RequestId>drkit-double</RequestId></Error>"
    ).encode()


@dataclass
class Restore:
    polls_left: int
    days: int
    tier: str

    @property
    def done(self) -> bool:
        return self.polls_left <= 0


@dataclass
class AwsDouble:
    upstream: str  # http://127.0.0.1:PORT of the real SeaweedFS
    secrets: dict[str, str]  # access key -> secret: checks the signature of what it answers itself
    restore_polls: int = 2  # HEADs after which a requested restore has completed
    enforce_lock: bool = True
    # access keys whose IAM policy grants no s3:DeleteObject / s3:DeleteObjectVersion (a writer's):
    # AWS answers their DELETEs 403 AccessDenied; SeaweedFS's identities cannot say that
    deny_delete: frozenset[str] = frozenset()
    port: int = field(default_factory=free_port)
    archived: dict[tuple[str, str], str] = field(default_factory=dict)  # (bucket, key) -> class
    restores: dict[tuple[str, str], Restore] = field(default_factory=dict)
    lifecycle: dict[str, bytes] = field(default_factory=dict)  # bucket -> the configuration, as put
    gone: set[tuple[str, str, str]] = field(default_factory=set)  # versions an unenforcing lock lost
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, query) as received
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AwsDouble:
        double = self

        class Handler(_Handler):
            owner = double

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="aws-double").start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def age(self, client: Any, bucket: str, days: int) -> list[str]:
        """Apply the bucket's lifecycle transitions as AWS would `days` after the objects were
        written: each object matching a rule's filter goes to the last class it has reached.
        `client` reads the objects and their tags from SeaweedFS itself. Returns the keys moved."""
        moved = []
        for rule in _rules(self.lifecycle.get(bucket, b"")):
            reached = [c for d, c in rule["transitions"] if d <= days]
            if not reached:
                continue
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=rule["prefix"]
            ):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    tags = {
                        t["Key"]: t["Value"]
                        for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
                    }
                    if all(tags.get(k) == v for k, v in rule["tags"].items()):
                        self.archived[(bucket, key)] = reached[-1]
                        moved.append(key)
        return moved


def _access_key(headers: dict[str, str]) -> str:
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return auth.split("Credential=", 1)[-1].split("/", 1)[0] if "Credential=" in auth else ""


def signature_ok(
    method: str, url: str, headers: dict[str, str], body: bytes, secrets: dict[str, str]
) -> bool:
    """AWS Signature Version 4 of a request, checked as S3 checks it (botocore computes it)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    fields = dict(
        part.strip().split("=", 1)
        for part in lower.get("authorization", "").removeprefix("AWS4-HMAC-SHA256 ").split(",")
        if "=" in part
    )
    try:
        access, _day, region, _service, _end = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        secret = secrets[access]
        request = AWSRequest(method=method, url=url, data=body, headers={h: lower[h] for h in signed})
    except (KeyError, ValueError):
        return False
    payload = lower.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return False
    auth = S3SigV4Auth(Credentials(access, secret), "s3", region)
    request.context["timestamp"] = lower.get("x-amz-date", "")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return hmac.compare_digest(expected, fields.get("Signature", ""))


def _rules(document: bytes) -> list[dict[str, Any]]:
    if not document:
        return []
    root = ET.fromstring(document)
    out = []
    for rule in root.iter():
        if _local(rule.tag) != "Rule" or _text(rule, "Status") != "Enabled":
            continue
        tags = {_text(t, "Key"): _text(t, "Value") for t in rule.iter() if _local(t.tag) == "Tag"}
        prefixes = [e.text or "" for e in rule.iter() if _local(e.tag) == "Prefix"]
        transitions = [
            (int(_text(t, "Days") or 0), _text(t, "StorageClass"))
            for t in rule.iter()
            if _local(t.tag) == "Transition"
        ]
        out.append(
            {"tags": tags, "prefix": prefixes[0] if prefixes else "", "transitions": sorted(transitions)}
        )
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: ET.Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


class _Handler(BaseHTTPRequestHandler):
    owner: AwsDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # --- the request as received, forwarded as it was ------------------------------------

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        segments = unquote(parts.path).lstrip("/").split("/", 1)
        self.bucket, self.key = segments[0], segments[1] if len(segments) > 1 else ""
        d = self.owner
        with d.lock:
            d.log.append((self.command, parts.path, parts.query))
        if self.command == "DELETE" and _access_key(dict(self.headers)) in d.deny_delete:
            self._send(*self._error(403, "AccessDenied", "Access Denied"))
            return
        status, headers, body = self._forward()
        answer = self._aws(status, headers, body)
        self._send(*answer)

    def _forward(self) -> tuple[int, dict[str, str], bytes]:
        target = urlsplit(self.owner.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
        try:
            conn.request(self.command, self.path, body=self.body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            out = {
                k: v for k, v in response.getheaders() if k.lower() not in ("transfer-encoding", "connection")
            }
            return response.status, out, body
        finally:
            conn.close()

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header(
                "Content-Length", headers.get("Content-Length", headers.get("content-length", "0"))
            )
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, **extra: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/xml"}, error_xml(code, message, **extra)

    # --- what AWS does on top -------------------------------------------------------------

    def _aws(self, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.key and self.command == "DELETE" and "versionId" in self.query and b"AccessDenied" in body:
            return self._delete_version(status, headers, body)
        if status in (401, 403) and self._auth_refused(body):
            return status, headers, body  # SeaweedFS refused the credentials: so would AWS
        if self.key and "restore" in self.query and self.command == "POST":
            # SeaweedFS answers 405 before it looks at the signature: check it here
            if not signature_ok(
                self.command, self.owner.url + self.path, dict(self.headers), self.body, self.owner.secrets
            ):
                return self._error(
                    403, "SignatureDoesNotMatch", "The request signature we calculated does not match"
                )
            return self._restore()
        if not self.key and "lifecycle" in self.query:
            return self._lifecycle(status, headers, body)
        if self.key and "versionId" in self.query and self._lost():
            return self._error(404, "NoSuchVersion", "The specified version does not exist.")
        if self.key and self.command in ("GET", "HEAD") and not set(self.query) - {"versionId"}:
            return self._object(status, headers, body)
        if not self.key and self.command == "GET" and self.query.get("list-type") == ["2"] and status == 200:
            return status, headers, self._listing(body)
        if not self.key and self.command == "GET" and "versions" in self.query and status == 200:
            return status, headers, self._without_lost(body)
        return status, headers, body

    def _auth_refused(self, body: bytes) -> bool:
        return any(
            code in body for code in (b"SignatureDoesNotMatch", b"InvalidAccessKeyId", b"AccessDenied")
        )

    def _restore(self) -> tuple[int, dict[str, str], bytes]:
        d = self.owner
        where = (self.bucket, self.key)
        try:
            root = ET.fromstring(self.body)
            days = int(_text(root, "Days"))
            tier = next((e.text or "" for e in root.iter() if _local(e.tag) == "Tier"), "Standard")
        except (ET.ParseError, ValueError):
            return self._error(*MALFORMED)
        if days < 1 or tier not in ("Expedited", "Standard", "Bulk"):
            return self._error(*MALFORMED)
        with d.lock:
            if where not in d.archived:
                return self._error(*NOT_ARCHIVED)
            current = d.restores.get(where)
            if current is None:
                d.restores[where] = Restore(d.restore_polls, days, tier)
                return 202, {}, b""  # "If the object is not previously restored ... 202 Accepted"
            if not current.done:
                return self._error(*IN_PROGRESS)
            return 200, {}, b""  # "If the object is previously restored, Amazon S3 returns 200 OK"

    def _object(self, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        d = self.owner
        where = (self.bucket, self.key)
        with d.lock:
            storage_class = d.archived.get(where)
            restore = d.restores.get(where)
            if storage_class is None or status != 200:
                return status, headers, body
            if self.command == "HEAD" and restore is not None and not restore.done:
                restore.polls_left -= 1
        headers = {
            k: v for k, v in headers.items() if k.lower() not in ("x-amz-storage-class", "x-amz-restore")
        }
        headers["x-amz-storage-class"] = storage_class
        if restore is not None:
            # x-amz-restore: ongoing-request="true" / ="false", expiry-date="..." (API_HeadObject.html)
            expiry = (datetime.now(UTC) + timedelta(days=restore.days)).strftime("%a, %d %b %Y 00:00:00 GMT")
            headers["x-amz-restore"] = (
                f'ongoing-request="false", expiry-date="{expiry}"'
                if restore.done
                else 'ongoing-request="true"'
            )
        if self.command == "GET" and (restore is None or not restore.done):
            return self._error(*NOT_RESTORED, StorageClass=storage_class)
        return status, headers, body

    def _listing(self, body: bytes) -> bytes:
        d = self.owner
        ET.register_namespace("", NS)
        root = ET.fromstring(body)
        changed = False
        for contents in root.iter(f"{{{NS}}}Contents"):
            key = _text(contents, "Key")
            storage_class = d.archived.get((self.bucket, key))
            if storage_class is None:
                continue
            for child in contents:
                if _local(child.tag) == "StorageClass":
                    child.text = storage_class
                    changed = True
        return ET.tostring(root, xml_declaration=True, encoding="UTF-8") if changed else body

    def _without_lost(self, body: bytes) -> bytes:
        """A version listing without the versions an unenforced lock let go."""
        d = self.owner
        if not d.gone:
            return body
        ET.register_namespace("", NS)
        root = ET.fromstring(body)
        for version in list(root):
            where = (self.bucket, _text(version, "Key"), _text(version, "VersionId"))
            if _local(version.tag) == "Version" and where in d.gone:
                root.remove(version)
        return ET.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _lifecycle(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        d = self.owner
        if self.command == "PUT" and status in (200, 501):
            for rule in _rules(self.body):
                for days, storage_class in rule["transitions"]:
                    if storage_class in ("STANDARD_IA", "ONEZONE_IA") and days < 30:
                        return self._error(400, "InvalidArgument", IA_TOO_SOON.format(storage_class))
            d.lifecycle[self.bucket] = self.body
            return 200, {}, b""
        if self.command == "GET" and self.bucket in d.lifecycle:
            return 200, {"Content-Type": "application/xml"}, d.lifecycle[self.bucket]
        return status, headers, body

    def _delete_version(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        d = self.owner
        version = self.query["versionId"][0]
        if status == 403 and not d.enforce_lock:  # accepted retention, does not enforce it
            with d.lock:
                d.gone.add((self.bucket, self.key, version))
            return 204, {"x-amz-version-id": version}, b""
        return status, headers, body

    def _lost(self) -> bool:
        version = self.query["versionId"][0]
        with self.owner.lock:
            return (self.bucket, self.key, version) in self.owner.gone
