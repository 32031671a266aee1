"""Where PostgreSQL's client tools run: on the drkit host against the DSN (local and
systemd runtimes), or inside the service's container through `docker exec` (compose).

In a container the tools connect over the server's own unix socket, the path its
`pg_hba.conf` trusts for replication (nself's and the official image's `local replication
all trust`), and they are the server's own version. Their stdout (a `pg_basebackup -F tar
-D -` stream, a `pg_dump -Fc` file) comes back through docker's stdout into drkit's part
splitter; nothing is written inside the container.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import conninfo

from drkit.adapters.container import container_exec
from drkit.adapters.postgres.client import ToolLogin, tool_login
from drkit.adapters.postgres.tools import parse_tool_version, tool_version
from drkit.domain.stack import Service
from drkit.infra.proc import run, secret_file

SOCKET_DIR = "/var/run/postgresql"
CONTAINER_PORT = 5432
CONTAINER_USER = "postgres"


@dataclass(frozen=True)
class ToolHost:
    """A login for the tool's command line, and how to run its argument list."""

    login: ToolLogin
    in_container: bool = False
    container_argv: tuple[str, ...] = ()

    def version(self, name: str, bin_dir: str | None) -> str:
        """The version of the tool that really runs (the container's own, for compose)."""
        if not self.in_container:
            return tool_version(name, bin_dir)
        return parse_tool_version(run(self.argv([name, "--version"]), timeout=30).stdout)

    def argv(self, args: list[str]) -> list[str]:
        if not self.in_container:
            return args
        from os.path import basename

        return [*self.container_argv, basename(args[0]), *args[1:]]


def inside_dsn(dsn: str, port: int | None) -> tuple[str, str]:
    """The DSN a tool inside the container uses (the unix socket, the server's own port), and
    the password taken out of it."""
    params = {k: v for k, v in conninfo.conninfo_to_dict(dsn).items() if v is not None}
    password = str(params.pop("password", "") or "")
    for key in ("host", "hostaddr", "passfile", "port", "sslmode", "sslrootcert"):
        params.pop(key, None)
    return conninfo.make_conninfo("", host=SOCKET_DIR, port=str(port or CONTAINER_PORT), **params), password


@contextmanager
def tool_host(service: Service, dsn: str) -> Iterator[ToolHost]:
    """A ToolHost for `service`, valid inside the `with` (its secret files go after)."""
    spec = service.runtime
    if spec.type != "compose":
        with tool_login(dsn) as login:
            yield ToolHost(login)
        return
    inner, password = inside_dsn(dsn, spec.port)
    env = {"PGPASSWORD": password} if password else None
    with container_exec(spec, user=spec.os_user or CONTAINER_USER, env=env) as box:
        prefix = box.wrap(["tool"])[:-1]
        yield ToolHost(ToolLogin(inner, in_container=True), in_container=True, container_argv=tuple(prefix))


@contextmanager
def tool_file(host: ToolHost, data: bytes, stem: str) -> Iterator[str]:
    """A path where the tool `host` runs can read `data` (0600, gone after the `with`): a
    private file on this host, or one in the container's /tmp, written through `docker exec -i`."""
    import os

    if not host.in_container:
        with secret_file(data, prefix=f"{stem}-") as path:
            yield path
        return
    path = f"/tmp/{stem}-{os.urandom(6).hex()}"
    docker, exec_, *rest = host.container_argv  # docker exec [--user U] [--env-file F] CONTAINER
    interactive = [docker, exec_, "-i", *rest]
    run(
        [*interactive, "sh", "-c", 'umask 077 && cat > "$1"', "sh", path],
        timeout=120,
        input_text=data.decode(),
    )
    try:
        yield path
    finally:
        run([*host.container_argv, "rm", "-f", path], timeout=60, check=False)


PIDFILE = ".drkit-receiver.pid"


def long_running(host: ToolHost, args: list[str], directory: str) -> list[str]:
    """`args` for a tool that runs until stopped. In a container, a shell writes the tool's
    pid into `directory` first: killing `docker exec` does not stop what runs inside."""
    if not host.in_container:
        return args
    script = 'echo $$ > "$1"; shift; exec "$@"'
    return host.argv(
        ["sh", "-c", script, "sh", f"{directory}/{PIDFILE}", *host.argv(args)[len(host.container_argv) :]]
    )


def stop_inside(host: ToolHost, directory: str, timeout: float = 30.0) -> str:
    """Stop the tool `long_running` started inside the container (SIGTERM, by its pid, with
    the shell's own `kill`: slim images have no kill binary). Returns what went wrong, or ""."""
    from pathlib import Path

    if not host.in_container:
        return ""
    try:
        pid = int(Path(directory, PIDFILE).read_text().strip())
    except (OSError, ValueError) as exc:
        return f"no pid of the tool in the container ({exc})"
    result = run(host.argv(["sh", "-c", 'kill -TERM "$1"', "sh", str(pid)]), timeout=timeout, check=False)
    return "" if result.returncode == 0 else f"kill {pid} in the container: {result.stderr.strip()}"


def give_to_container_user(host: ToolHost, directory: str) -> None:
    """Let the tools' user inside the container write into `directory` (mounted from this
    host at the same path): chown it to that user's uid and gid, as the container sees them."""
    import os

    from drkit.domain.errors import OperationError

    if not host.in_container or os.geteuid() != 0:
        return
    ids = [run(host.argv(["id", flag]), timeout=60, check=False) for flag in ("-u", "-g")]
    if any(r.returncode != 0 or not r.stdout.strip().isdigit() for r in ids):
        raise OperationError(
            f"cannot read the container user's uid: {ids[0].stderr.strip() or ids[1].stderr.strip()}"
        )
    os.chown(directory, int(ids[0].stdout), int(ids[1].stdout))
