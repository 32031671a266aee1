"""Health probes: does a service really answer? Each speaks the service's own protocol.

- sql: `select 1` through psycopg on the service's DSN (PostgreSQL does not speak HTTP).
- redis: PING through redis-py.
- http: a GET, judged by status code and, optionally, a substring of the body.
- hasura: `GET /healthz?strict=true`, which fails on inconsistent metadata.
- auth: a canary sign-in, `POST /signin/email-password`; hasura-auth's /healthz answers 200
  without checking anything. The canary's email is the user part of the target URL
  (`http://canary%40example.com@127.0.0.1:4000`), its password the service's `password`.
- graphql: a query through Hasura's `/v1/graphql` (smoke checks): no `errors` in the answer.
- tcp: a TCP connect. none: nothing to ask.

`check` never raises: every failure is an unhealthy outcome with the reason.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from psycopg import conninfo

from drkit.adapters.postgres.client import describe, make_dsn, scalar, service_dsn
from drkit.domain.stack import HealthProbe, Service

PROBE_ATTEMPT_TIMEOUT = 10.0
DEFAULT_HTTP_PATHS = {
    "meilisearch": "/health",
    "monitoring": "/-/healthy",
    "functions": "/healthz",
    "http": "",
}
AUTH_SIGNIN_PATH = "/signin/email-password"
HASURA_HEALTH_PATH = "/healthz?strict=true"
GRAPHQL_PATH = "/v1/graphql"


class ProbeFailed(Exception):
    """A probe got an answer, and the answer says unhealthy."""


@dataclass(frozen=True)
class ProbeOutcome:
    healthy: bool
    detail: str
    seconds: float


def default_probe(service: Service) -> HealthProbe:
    """The probe a service gets when `health` is not configured, chosen by its kind."""
    if service.health is not None:
        return service.health
    if service.kind == "postgres" and service.dsn:
        return HealthProbe("sql")
    if service.kind == "redis" and service.url:
        return HealthProbe("redis")
    if service.kind == "hasura" and service.url:
        return HealthProbe("hasura")
    if service.kind == "s3" and service.url:
        return HealthProbe("s3")  # a signed request: SeaweedFS has no MinIO health path
    if service.kind in DEFAULT_HTTP_PATHS and service.url:
        return HealthProbe("http", _with_path(service.url, DEFAULT_HTTP_PATHS[service.kind]))
    if service.url or service.dsn:
        # auth among others: a sign-in needs a canary account, so only configured probes do one
        return HealthProbe("tcp")
    return HealthProbe("none")


def describe_probe(service: Service, probe: HealthProbe) -> str:
    """One line for tables: what is asked, where."""
    try:
        if probe.type == "sql":
            return f"sql select 1 on {describe(_dsn(service, probe))}"
        if probe.type == "redis":
            return f"redis PING {_redact(_url(service, probe))}"
        if probe.type == "hasura":
            return f"GET {_hasura_url(service, probe)}"
        if probe.type == "auth":
            return f"canary sign-in POST {_auth_url(service, probe)[0]}"
        if probe.type == "http":
            return f"GET {_redact(_url(service, probe))}"
        if probe.type == "s3":
            return f"S3 ListBuckets on {_redact(_url(service, probe))}"
        if probe.type == "graphql":
            return f"GraphQL POST {_with_path((service.url or '').rstrip('/'), GRAPHQL_PATH)}"
        if probe.type == "tcp":
            host, port = _host_port(service, probe)
            return f"tcp connect {host}:{port}"
    except ProbeFailed as exc:
        return f"{probe.type} ({exc})"
    return "no probe"


def check(service: Service, probe: HealthProbe, *, timeout: float = PROBE_ATTEMPT_TIMEOUT) -> ProbeOutcome:
    """Probe once; never raises."""
    started = time.monotonic()
    runner = PROBES.get(probe.type)
    try:
        if runner is None:
            raise ProbeFailed(f"unknown probe type {probe.type!r}")
        detail = runner(service, probe, timeout)
        healthy = True
    except Exception as exc:
        detail = _first_line(exc)
        healthy = False
    return ProbeOutcome(healthy, detail, time.monotonic() - started)


def probe_timeout(probe: HealthProbe) -> float:
    """How long a start waits for this probe to pass."""
    return max(probe.timeout, timedelta(seconds=0)).total_seconds()


def _sql(service: Service, probe: HealthProbe, timeout: float) -> str:
    seconds = max(1, int(timeout))
    if probe.target:
        dsn = make_dsn(probe.target, password=service.password, connect_timeout=seconds)
    else:  # the service's own DSN, dialed as drkit dials it everywhere (a compose container's address)
        dsn = service_dsn(service, connect_timeout=seconds)
    value = scalar(dsn, "select 1")
    if value != 1:
        raise ProbeFailed(f"select 1 returned {value!r}")
    return "select 1 ok"


def _redis(service: Service, probe: HealthProbe, timeout: float) -> str:
    import redis

    extra = {"password": service.password} if service.password else {}
    client = redis.Redis.from_url(
        _url(service, probe), socket_timeout=timeout, socket_connect_timeout=timeout, **extra
    )
    try:
        if not client.ping():
            raise ProbeFailed("PING got no PONG")
    finally:
        client.close()
    return "PONG"


def _http(service: Service, probe: HealthProbe, timeout: float) -> str:
    response = httpx.get(_url(service, probe), timeout=timeout)
    return _judge(response, probe.expect_status, probe.expect_body)


def _hasura(service: Service, probe: HealthProbe, timeout: float) -> str:
    response = httpx.get(_hasura_url(service, probe), timeout=timeout)
    return _judge(response, probe.expect_status, probe.expect_body)


def _auth(service: Service, probe: HealthProbe, timeout: float) -> str:
    url, email = _auth_url(service, probe)
    if not email:
        raise ProbeFailed(
            "no canary account: put its email in the target's user part, "
            "e.g. http://canary%40example.com@127.0.0.1:4000"
        )
    if not service.password:
        raise ProbeFailed(f"no canary password: set services.{service.name}.password (env:NAME)")
    if probe.expect_status != 200 or probe.expect_body:  # the user's own expectation
        response = httpx.post(url, json={"email": email, "password": service.password}, timeout=timeout)
        return "canary signed in: " + _judge(response, probe.expect_status, probe.expect_body)
    return canary_sign_in(url, email, service.password, timeout)


# hasura-auth's answers to POST /signin/email-password (nhost/hasura-auth go/controller/errors.go,
# post_signin_email_password.go): what each says about the service, and what to change.
SIGNIN_REFUSALS = {
    "invalid-email-password": "the canary account does not exist or its password differs: create it "
    "in hasura-auth or fix its password (services.<auth>.password)",
    "unverified-user": "the canary's email is not verified: verify it, or set "
    "AUTH_EMAIL_SIGNIN_EMAIL_VERIFIED_REQUIRED=false",
    "disabled-user": "the canary account is disabled (auth.users.disabled): enable it",
    "invalid-request": "hasura-auth refused the request (with AUTH_CONCEAL_ERRORS every refusal reads so)",
}


def canary_sign_in(
    url: str, email: str, password: str, timeout: float, *, transport: httpx.BaseTransport | None = None
) -> str:
    """Sign the canary in; healthy when hasura-auth checked its password against the database
    (a session, or an MFA ticket with `session: null`); ProbeFailed naming the fix otherwise."""
    with httpx.Client(transport=transport, timeout=timeout) as client:
        response = client.post(url, json={"email": email, "password": password})
    if response.status_code == 429:
        raise ProbeFailed(
            "HTTP 429: hasura-auth's rate limit on /signin refused the canary; probe less often "
            "or raise AUTH_RATE_LIMIT_BRUTE_FORCE_BURST"
        )
    body = _json_object(response)
    if response.status_code == 200:
        session = body.get("session")
        if isinstance(session, dict) and session.get("accessToken"):
            return "canary signed in: HTTP 200 with a session"
        mfa = body.get("mfa")
        if session is None and isinstance(mfa, dict) and mfa.get("ticket"):
            return "canary's password checked: HTTP 200 with an MFA ticket (session: null)"
        raise ProbeFailed("HTTP 200 without a session or an MFA ticket")
    code = str(body.get("error", ""))
    reason = SIGNIN_REFUSALS.get(code, " ".join(response.text.split())[:120] or "(empty answer)")
    raise ProbeFailed(f"HTTP {response.status_code} {code}: {reason}".replace("  ", " "))


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _graphql(service: Service, probe: HealthProbe, timeout: float) -> str:
    """A GraphQL query through Hasura (`POST /v1/graphql`, the admin secret as the service's
    password): an answer without `errors`, and with `expect_body` in it when given."""
    if not probe.target:
        raise ProbeFailed("a graphql probe needs the query as its target")
    if not service.url:
        raise ProbeFailed(f"service {service.name} has no url to query")
    headers = {"X-Hasura-Admin-Secret": service.password} if service.password else {}
    url = _with_path(service.url.rstrip("/"), GRAPHQL_PATH)
    response = httpx.post(url, json={"query": probe.target}, headers=headers, timeout=timeout)
    verdict = _judge(response, probe.expect_status, probe.expect_body)
    try:
        errors = response.json().get("errors")
    except ValueError as exc:
        raise ProbeFailed(f"HTTP {response.status_code} but not JSON") from exc
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else errors
        message = first.get("message", first) if isinstance(first, dict) else first
        raise ProbeFailed(f"GraphQL error: {message}")
    return f"GraphQL answered ({verdict})"


def _tcp(service: Service, probe: HealthProbe, timeout: float) -> str:
    host, port = _host_port(service, probe)
    with socket.create_connection((host, port), timeout=timeout):
        return f"connected to {host}:{port}"


def _none(service: Service, probe: HealthProbe, timeout: float) -> str:
    return "no probe configured"


def _s3(service: Service, probe: HealthProbe, timeout: float) -> str:
    from drkit.adapters.s3.objects import s3_probe

    return s3_probe(service, probe, timeout)


PROBES: dict[str, Callable[[Service, HealthProbe, float], str]] = {
    "sql": _sql,
    "redis": _redis,
    "http": _http,
    "hasura": _hasura,
    "auth": _auth,
    "tcp": _tcp,
    "none": _none,
    "s3": _s3,
    "graphql": _graphql,
}


def _judge(response: httpx.Response, status: int, body: str | None) -> str:
    if response.status_code != status:
        snippet = " ".join(response.text.split())[:120]
        raise ProbeFailed(
            f"HTTP {response.status_code} (expected {status})" + (f": {snippet}" if snippet else "")
        )
    if body and body not in response.text:
        raise ProbeFailed(f"HTTP {response.status_code} but the body lacks {body!r}")
    return f"HTTP {response.status_code}"


def _dsn(service: Service, probe: HealthProbe) -> str:
    dsn = probe.target or service.dsn
    if not dsn:
        raise ProbeFailed(f"service {service.name} has no dsn to probe")
    return dsn


def _url(service: Service, probe: HealthProbe) -> str:
    url = probe.target or service.url
    if not url:
        raise ProbeFailed(f"service {service.name} has no url to probe")
    return url


def _hasura_url(service: Service, probe: HealthProbe) -> str:
    url = _url(service, probe)
    return url if urlsplit(url).path not in ("", "/") else _with_path(url, HASURA_HEALTH_PATH)


def _auth_url(service: Service, probe: HealthProbe) -> tuple[str, str]:
    """The sign-in URL without its user part, and the canary's email from that user part."""
    url = httpx.URL(_url(service, probe))
    email = url.username
    bare = url.copy_with(username=None, password=None)
    if bare.path in ("", "/"):
        bare = bare.copy_with(path=AUTH_SIGNIN_PATH)
    return str(bare), email


def _host_port(service: Service, probe: HealthProbe) -> tuple[str, int]:
    target = probe.target or service.url
    if target:
        parts = urlsplit(target if "//" in target else f"tcp://{target}")
        if parts.hostname and parts.port:
            return parts.hostname, parts.port
        if parts.hostname and parts.scheme in ("http", "https"):
            return parts.hostname, 443 if parts.scheme == "https" else 80
        raise ProbeFailed(f"cannot tell host and port from {target!r}")
    if service.dsn:
        params = conninfo.conninfo_to_dict(service.dsn)
        return str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432)))
    raise ProbeFailed(f"service {service.name} has no address to probe")


def _with_path(url: str, path: str) -> str:
    return url.rstrip("/") + path if path else url


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
