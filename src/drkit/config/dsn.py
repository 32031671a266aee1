"""PostgreSQL connection strings checked when stack.yaml loads, the way libpq reads them
(`host=db port=5432 dbname=app`, values quoted with single quotes; or a postgresql:// URI),
so a typo is reported with its file, line and key rather than at connect time.

Pure Python, no psycopg: `wal-push` loads stack.yaml once per WAL segment and stays light.
libpq's own keyword list is asked (through psycopg) only for a keyword not known here.
"""

from __future__ import annotations

import difflib
from urllib.parse import parse_qsl, urlsplit

# libpq 18's keywords (PQconndefaults); a newer libpq's are asked for when one is not here.
KEYWORDS = frozenset(
    {
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "password",
        "port",
        "replication",
        "require_auth",
        "requirepeer",
        "scram_client_key",
        "scram_server_key",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
    }
)
NUMERIC = ("connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count")


def check_dsn(text: str) -> dict[str, str]:
    """The keywords and values of `text`; ValueError saying what is wrong and what to do."""
    params = _uri(text) if text.startswith(("postgresql://", "postgres://")) else _keywords(text)
    for key in params:
        if key not in KEYWORDS and key not in _libpq_keywords():
            near = difflib.get_close_matches(key, sorted(KEYWORDS), n=1)
            hint = f"did you mean {near[0]!r}?" if near else "see libpq's connection parameters"
            raise ValueError(f"unknown connection keyword {key!r}: {hint}")
    _check_ports(params.get("port"))
    for key in NUMERIC:
        value = params.get(key)
        if value is not None and not value.strip().lstrip("-").isdigit():
            raise ValueError(f"{key}={value!r} is not a number of seconds (or a count)")
    return params


def _keywords(text: str) -> dict[str, str]:
    """libpq's `keyword = value` form (conninfo_parse in fe-connect.c)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return params
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            raise ValueError(f'missing "=" after {key!r}: write keyword=value pairs, like host=db port=5432')
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value, i = _value(text, i, key)
        params[key] = value


def _value(text: str, i: int, key: str) -> tuple[str, int]:
    out: list[str] = []
    n = len(text)
    if i < n and text[i] == "'":
        i += 1
        while i < n and text[i] != "'":
            if text[i] == "\\" and i + 1 < n:
                i += 1
            out.append(text[i])
            i += 1
        if i >= n:
            raise ValueError(f"the value of {key!r} opens a quote (') and never closes it: close it")
        return "".join(out), i + 1
    while i < n and not text[i].isspace():
        if text[i] == "\\" and i + 1 < n:
            i += 1
        out.append(text[i])
        i += 1
    value = "".join(out)
    if value.startswith('"'):
        raise ValueError(
            f"the value of {key!r} starts with a double quote, which libpq takes literally: "
            "quote values with single quotes (host='my db') or not at all"
        )
    return value, i


def _uri(text: str) -> dict[str, str]:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URI ({exc}): write postgresql://user@host:5432/dbname") from exc
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if port is not None:
        params["port"] = str(port)
    return params


def _check_ports(value: str | None) -> None:
    if value is None:
        return
    for entry in value.split(","):
        port = entry.strip()
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"port={port!r} is not a port number: give one from 1 to 65535, like port=5432")


def _libpq_keywords() -> frozenset[str]:
    """The keywords of the libpq this machine has (a newer one may know more)."""
    try:
        from psycopg import pq
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return frozenset()
    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults())
