"""In-place restore of an object store run as a container (nself's MinIO: `runtime.type:
compose` with its data in a named volume): the server starts over from an emptied volume and
the backup's objects are written back through the S3 API.

1. Check the backup before touching anything: every bucket's listing readable and every
   stored file its versions point to present, then every version to be restored read back
   and hashed (a damaged part refuses the restore here, the container still running).
2. Stop the container through the runtime; the S3 port must stop answering (else the server
   is not run by that container, and nothing is changed).
3. Move every entry of the volume into `drkit-before-restore-<UTC time>/` inside it
   (infra/aside.py): renames on one file system, nothing deleted, earlier such folders left
   where they are, a name never reused, a ledger so a killed restore is undone by the next.
   The name is not a valid bucket name, so the server does not list it as a bucket.
4. Start the container and wait (with a deadline) until S3 answers a signed request and
   accepts a write.
5. Recreate the buckets and write the versions back (restore.py, as of the target time).

A failure after step 3 (or a signal) stops the container, puts the previous contents back
(what the failed restore wrote is removed: it came from the backup), starts the container
again and waits until S3 answers, then says so; if that fails too, it says where the
previous contents are and how to put them back by hand.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from drkit.adapters.s3.objects import ObjectStore, configured_buckets, endpoint_for
from drkit.domain.backup import Manifest
from drkit.domain.checks import Status
from drkit.domain.errors import DrkitError, IntegrityError, OperationError, RolledBackError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.layout import lock_name
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import objects_prefix, state_at
from drkit.engines.objects.copy import BucketIO, check_content, restore_order
from drkit.engines.objects.restore import WORKERS, check_targets, choose_backup, read_listing, restore_locked
from drkit.engines.objects.verify import verify_present
from drkit.infra import locks
from drkit.infra.aside import Aside, move_aside, roll_back, settle, undo_unfinished
from drkit.infra.interrupt import deferred, interruptible
from drkit.infra.wait import wait_for
from drkit.runtimes.compose import ComposeRuntime

ASIDE = "drkit-before-restore-"
STOP_TIMEOUT = 60.0
READY_TIMEOUT = 300.0
PROBE_KEY = ".drkit-restore-probe"


@dataclass(frozen=True)
class VolumeTarget:
    """The container and the named volume holding the server's data, as docker reports them."""

    container: str
    volume: str
    mounted_at: str
    host_path: Path

    def plan(self) -> str:
        return (
            f"stop container {self.container}, move every entry of volume {self.volume} "
            f"(mounted at {self.mounted_at}; {self.host_path} on this host) into "
            f"{ASIDE}<UTC time>/ inside it, start the container, write the backup's objects back"
        )


class _ContainerExited(OperationError):
    pass


def volume_target(service: Service) -> VolumeTarget:
    """Where the server's data is: refuses a service not run as a compose container."""
    if service.runtime.type != "compose":
        raise UsageError(
            f"--in-place restores {service.name} into its container's volume: it needs "
            f"runtime.type compose (it has {service.runtime.type})",
            hint="without --in-place the backup's objects are written back through the S3 API",
        )
    runtime = ComposeRuntime(service.runtime, name=service.name)
    volume, mounted_at = runtime.volume_mount(service.runtime.mount)
    return VolumeTarget(runtime.container, volume, mounted_at, Path(runtime.volume_path(volume)))


def restore_in_place(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult:
    if options.to or options.prefix:
        raise UsageError(
            "--in-place restores every bucket of the backup into the emptied volume: no --to or --prefix"
        )
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"), interruptible():
        began = ws.clock.monotonic()
        manifest = choose_backup(ws, service, options)
        target = volume_target(service)
        checked = check_backup(ws, service, manifest, options)
        runtime = ComposeRuntime(service.runtime, name=service.name)
        ledger = ws.state_dir / "replacing" / f"{service.name}.json"
        undo_unfinished(ledger, now=ws.clock.now(), stop=runtime.stop, live=target.host_path)
        _stop(service, runtime)
        try:
            moved = move_aside(
                target.host_path, "before-restore", now=ws.clock.now(), inside=True, prefix="", ledger=ledger
            )
        except BaseException as exc:
            with deferred():
                runtime.start()
            raise RolledBackError(
                f"{_why(exc)}; nothing was moved and {target.container} was started again"
            ) from exc
        aside = moved.path or target.host_path
        try:
            runtime.start()
            wait_ready(service, runtime, list(manifest.details.get("buckets", {})))
            result = restore_locked(ws, service, replace(options, yes=True), manifest)
        except BaseException as exc:
            with deferred():
                raise _put_back(ws, service, runtime, target, moved, exc) from exc
        settle(moved)
    detail = (
        f"{checked}; {result.detail}; the volume's previous contents are kept in {aside} "
        f"(volume {target.volume})"
    )
    return replace(result, seconds=ws.clock.monotonic() - began, detail=detail)


def check_backup(ws: Workspace, service: Service, manifest: Manifest, options: RestoreOptions) -> str:
    """Refuse before anything is touched: listings, stored files, then every version to be
    restored read back and hashed."""
    refused = f"in-place restore of {manifest.backup_id} refused ({service.name} was not touched)"
    if configured_buckets(service):
        raise UsageError(
            f"{refused}: only the buckets {', '.join(configured_buckets(service))} are backed up, and "
            "--in-place empties the whole volume",
            hint="restore without --in-place (through the S3 API), or back up every bucket",
        )
    if not manifest.details.get("buckets"):
        raise UsageError(f"{refused}: the backup holds no bucket")
    check_targets(ws.stack, service, manifest, list(manifest.details["buckets"]), None)
    failed = [r for r in verify_present(ws, service, manifest) if r.status is Status.FAILED]
    if failed:
        raise IntegrityError(f"{refused}: {failed[0].name}: {failed[0].detail}")
    store = ObjectStore(endpoint_for(service))  # not contacted: BucketIO wants one
    count = 0
    try:
        for bucket in manifest.details.get("buckets", {}):
            wanted = state_at(read_listing(ws, manifest, bucket), options.target_time).values()
            io = BucketIO(ws, store, bucket, objects_prefix(manifest.stack, manifest.service, bucket))
            with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="check") as pool:
                list(pool.map(lambda r, io=io: check_content(io, r), sorted(wanted, key=restore_order)))
            count += len(wanted)
    except DrkitError as exc:
        error = IntegrityError if isinstance(exc, IntegrityError) else OperationError
        raise error(f"{refused}: {exc.message}") from exc
    return f"{count} objects checked against their SHA-256 before the container was stopped"


def _port_open(service: Service) -> bool:
    parts = urlsplit(endpoint_for(service).url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2.0):
            return True
    except OSError:
        return False


def _stop(service: Service, runtime: ComposeRuntime) -> None:
    runtime.stop(STOP_TIMEOUT)
    try:
        wait_for(
            lambda: not _port_open(service),
            timeout=STOP_TIMEOUT,
            what=f"{service.name} to stop answering",
        )
    except OperationError as exc:
        raise OperationError(
            f"{service.name} still answers at {endpoint_for(service).url} after {runtime.description} "
            "was stopped: it is not run by that container; nothing was moved (start the container again)"
        ) from exc


def wait_ready(service: Service, runtime: ComposeRuntime, buckets: list[str]) -> None:
    """Until S3 answers a signed request and accepts a write (SeaweedFS answers before its
    volume server registers), failing at once when the container exits."""

    def ready() -> bool:
        if not runtime.is_running():
            raise _ContainerExited(f"container {runtime.container} exited: {_last_log(runtime)}")
        store = ObjectStore(endpoint_for(service, max_attempts=1, timeout=5.0))
        store.buckets()
        if buckets:
            store.create_bucket(buckets[0])
            store.put(buckets[0], PROBE_KEY, b"ready", "text/plain", {})
            store.delete(buckets[0], PROBE_KEY)
        return True

    wait_for(
        ready,
        timeout=READY_TIMEOUT,
        what=f"S3 of {service.name} ({runtime.container}) to answer and accept writes",
        retry_on=(OperationError,),
        fatal=(_ContainerExited,),
    )


def _last_log(runtime: ComposeRuntime) -> str:
    try:
        lines = [line for line in runtime.logs(tail=5).splitlines() if line.strip()]
    except OperationError:
        return "no logs"
    return lines[-1] if lines else "no logs"


def _put_back(
    ws: Workspace,
    service: Service,
    runtime: ComposeRuntime,
    target: VolumeTarget,
    moved: Aside,
    exc: BaseException,
) -> OperationError:
    """After a failure: the previous contents back in the volume, the container started
    again until S3 answers (RolledBackError); else where they are (OperationError)."""
    why = _why(exc)
    try:
        runtime.stop(STOP_TIMEOUT)
        roll_back(moved, now=ws.clock.now())
        runtime.start()
        wait_ready(service, runtime, [])
    except (DrkitError, OSError) as again:
        aside = moved.path or target.host_path
        return _failed_after_move(
            service, target, aside, OperationError(f"{why}; putting it back failed: {_why(again)}")
        )
    return RolledBackError(
        f"in-place restore of {service.name} failed after the volume was emptied ({why}); its previous "
        f"contents are back in volume {target.volume} and {target.container} answers again"
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, DrkitError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _failed_after_move(service: Service, target: VolumeTarget, aside: Path, exc: Exception) -> OperationError:
    why = exc.message if isinstance(exc, DrkitError) else f"{type(exc).__name__}: {exc}"
    return OperationError(
        f"in-place restore of {service.name} failed after the volume was emptied ({why}); its previous "
        f"contents are kept, untouched, in {aside} (volume {target.volume}, {target.mounted_at}/{aside.name} "
        f"in container {target.container})",
        hint=f"to go back: docker stop {target.container}, move the entries of {aside} back into "
        f"{target.host_path} (after moving the new ones aside), docker start {target.container}",
    )
