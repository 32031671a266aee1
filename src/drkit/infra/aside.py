"""Move live data aside before a restore replaces it, and put it back when the restore fails:
the one mechanism every in-place restore uses (PostgreSQL's data directory, its compose
volume, Redis, MeiliSearch, an object store's volume), and failover's rebuild of a standby.

Two shapes:
- whole: the live directory is renamed to a sibling, `<name>.drkit-<label>-<stamp>`
  (PostgreSQL's data directory, MeiliSearch's database);
- inside: the entries of the live directory (every one but drkit's own folders, or the
  named ones) move into a new folder in it, `<prefix>drkit-<label>-<stamp>` (a container's
  volume, whose root is a mount point that cannot be renamed; Redis's two files).

The rules, the same for every caller:
1. A name is never reused, whatever the clock says: the folder is made with mkdir, which
   fails when the name exists, and the next free `-N` is taken (the stamp only makes it
   readable). A whole directory is then renamed onto that empty folder (rename replaces an
   empty directory atomically, and fails on a non-empty one).
2. The parent is fsynced after the renames (inside: both folders), so a crash cannot undo a
   move the caller went on from.
3. An inside move is made into `<folder>.moving`, renamed when complete: a move killed half
   way is finished by the next `move_aside` of the same directory, never split in two.
4. `roll_back` always ends with the old data at the live path: what is there now (a
   half-written restore) first goes into its own never-reused `failed-restore` folder, the old
   data comes back, then that folder is deleted (drkit wrote it from a backup; when it
   cannot be deleted, its path is returned so the caller names it).
5. With a ledger (a small JSON file outside the live directory), a replacement that was
   killed is known to the next run: the ledger is written before the first rename and
   removed once the caller settles (success) or rolls back; `unfinished(ledger)` hands the
   next run what to roll back first. `in_use(aside)` marks the point after which the
   new data is in use and must be kept, not rolled back.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from drkit.domain.errors import OperationError
from drkit.infra.atomic import fsync_dir, write_atomic

MOVING = ".moving"
STAMP = "%Y%m%dT%H%M%SZ"
# Every label a restore uses, and those earlier drkit versions used (found by `kept`).
LABELS = ("before-restore", "failed-restore", "failed-import", "corrupt", "before-pitr", "before-rebuild")
_LABEL = "|".join(LABELS)
_INSIDE_RE = re.compile(
    rf"^(?:\.|pgsql_tmp\.)?drkit-(?P<label>{_LABEL})-(?P<stamp>\d{{8}}T\d{{6}}Z)(?:-\d+)?(?P<moving>\.moving)?$"
)
_ATTEMPTS = 10_000


@dataclass(frozen=True)
class Aside:
    """Where a live directory's old data went. `path` None: there was nothing to move."""

    live: Path
    path: Path | None
    inside: bool = False
    only: tuple[str, ...] | None = None  # inside: the entries moved (None: all but drkit's)
    ledger: Path | None = None
    facts: tuple[tuple[str, str], ...] = ()  # what the caller needs to finish a roll-back

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"nothing (there was no {self.live})"

    def fact(self, key: str) -> str | None:
        return dict(self.facts).get(key)

    def to_json(self, state: str) -> bytes:
        return json.dumps(
            {
                "state": state,
                "live": str(self.live),
                "path": str(self.path) if self.path is not None else None,
                "inside": self.inside,
                "only": list(self.only) if self.only is not None else None,
                "facts": dict(self.facts),
            },
            indent=1,
        ).encode()


@dataclass(frozen=True)
class Kept:
    """An aside left on disk (for `drkit check`)."""

    path: Path
    live: Path
    label: str
    size: int
    complete: bool = True  # False: a move that was interrupted half way

    @property
    def remove(self) -> str:
        return f"rm -rf -- {shlex.quote(str(self.path))}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "live": str(self.live),
            "label": self.label,
            "bytes": self.size,
            "complete": self.complete,
            "remove": self.remove,
        }


def is_aside_name(name: str) -> bool:
    """A folder this mechanism made inside a live directory (never moved itself)."""
    return _INSIDE_RE.match(name) is not None


def move_aside(
    live: Path,
    label: str,
    *,
    now: datetime,
    inside: bool = False,
    only: tuple[str, ...] | None = None,
    prefix: str = ".",
    ledger: Path | None = None,
    facts: dict[str, str] | None = None,
) -> Aside:
    """Move the data at `live` aside (see the module's rules); returns where it went."""
    _known(label)
    plan = Aside(live, None, inside, only, ledger, tuple(sorted((facts or {}).items())))
    try:
        if not inside:
            return _move_whole(plan, label, now)
        return _move_inside(plan, label, now, prefix)
    except OSError as exc:
        raise OperationError(f"cannot move {live} aside: {_why(exc)}") from exc


def _note(aside: Aside, state: str) -> None:
    if aside.ledger is not None:
        write_atomic(aside.ledger, aside.to_json(state), mode=0o600)


def _move_whole(plan: Aside, label: str, now: datetime) -> Aside:
    live = plan.live
    if not live.exists() and not live.is_symlink():
        _note(plan, "replacing")
        return plan
    for candidate in _names(live.parent, f"{live.name}.drkit-{label}-{now:{STAMP}}"):
        aside = replace(plan, path=candidate)
        _note(aside, "replacing")  # before the rename: a kill after it is known to the next run
        try:
            os.rename(live, candidate)  # replaces the empty folder just made, atomically
        except OSError as exc:
            _rmdir_quietly(candidate)
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):  # someone filled it meanwhile
                continue
            raise
        fsync_dir(live.parent)
        return aside
    raise OperationError(f"no free name to move {live} aside")  # pragma: no cover


def _move_inside(plan: Aside, label: str, now: datetime, prefix: str) -> Aside:
    live = plan.live
    live.mkdir(parents=True, exist_ok=True)
    unfinished = sorted(p for p in live.iterdir() if p.name.endswith(MOVING) and is_aside_name(p.name))
    if unfinished:  # a move killed half way: finish that one (rule 3)
        folder = unfinished[-1]
    else:
        base = f"{prefix}drkit-{label}-{now:{STAMP}}"
        folder = next(_names(live, base, suffix=MOVING, like=live))
    final = folder.with_name(folder.name.removesuffix(MOVING))
    aside = replace(plan, path=final)
    _note(replace(aside, path=folder), "replacing")
    for entry in _entries(live, plan.only):
        os.rename(live / entry, folder / entry)
    fsync_dir(folder)
    os.rename(folder, final)
    fsync_dir(live)
    _note(aside, "replacing")
    return aside


def in_use(aside: Aside, facts: dict[str, str] | None = None) -> Aside:
    """From here the new data is in use: a run killed after this is settled, not rolled back.
    `facts` (what the caller reports on success) are kept with it."""
    aside = replace(aside, facts=tuple(sorted({**dict(aside.facts), **(facts or {})}.items())))
    _note(aside, "started")
    return aside


def settle(aside: Aside, facts: dict[str, str] | None = None) -> None:
    """The replacement succeeded: nothing to roll back any more (the old data stays aside,
    for the operator; the ledger keeps the facts, for a run that resumes after a kill)."""
    _note(replace(aside, facts=tuple(sorted({**dict(aside.facts), **(facts or {})}.items()))), "settled")


def unfinished(ledger: Path) -> tuple[Aside, str] | None:
    """The replacement a killed run left (state `replacing` or `started`), if any."""
    found = last_replacement(ledger)
    if found is None or found[1] not in ("replacing", "started"):
        return None
    return found


def undo_unfinished(
    ledger: Path, *, now: datetime, stop: Callable[[], None], live: Path | None = None
) -> tuple[Aside, str] | None:
    """Before a new replacement: finish what a killed run left. In use already (`started`):
    kept, the ledger settled ("kept"). Else its server stopped through `stop`, the old data
    put back at the live path ("undone"). A ledger naming another live path than `live`
    (the configuration changed since) is an error: nothing is touched."""
    found = unfinished(ledger)
    if found is None:
        return None
    aside, state = found
    if live is not None and aside.live != live:
        raise OperationError(
            f"{ledger} records an interrupted restore of {aside.live}, not of {live}; put "
            f"{aside.describe()} back by hand if needed, then delete {ledger}"
        )
    if state == "started":
        settle(aside)
        return aside, "kept"
    stop()
    roll_back(aside, now=now)
    return aside, "undone"


def last_replacement(ledger: Path) -> tuple[Aside, str] | None:
    """What the ledger says of the last replacement, whatever its state."""
    try:
        data = json.loads(ledger.read_text())
        aside = Aside(
            Path(data["live"]),
            Path(data["path"]) if data.get("path") else None,
            bool(data.get("inside")),
            tuple(data["only"]) if data.get("only") is not None else None,
            ledger,
            tuple(sorted((str(k), str(v)) for k, v in dict(data.get("facts") or {}).items())),
        )
        return aside, str(data.get("state", "replacing"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OperationError(f"the record of an interrupted restore, {ledger}, is unreadable: {exc}") from exc


def roll_back(aside: Aside, *, now: datetime) -> Path | None:
    """Put the old data back at the live path (rule 4). Returns the folder holding what
    was there instead when it could not be deleted; None when nothing is left over."""
    failed: Path | None = None
    try:
        source, moved_whole = _where_the_old_data_is(aside)
        if moved_whole:
            failed = _clear(aside, now)
        if source is not None:
            if aside.inside:
                for entry in sorted(os.listdir(source)):
                    os.rename(source / entry, aside.live / entry)
                source.rmdir()
                fsync_dir(aside.live)
            elif moved_whole:
                os.rename(source, aside.live)
                fsync_dir(aside.live.parent)
            else:
                source.rmdir()  # only the empty folder was made: the data never moved
    except OSError as exc:
        raise OperationError(
            f"putting the old data back at {aside.live} failed ({_why(exc)}); it is in {aside.describe()}"
        ) from exc
    _note(aside, "rolled-back")
    if failed is None:
        return None
    shutil.rmtree(failed, ignore_errors=True)
    return failed if failed.exists() else None


def _where_the_old_data_is(aside: Aside) -> tuple[Path | None, bool]:
    """(the folder holding the old data, whether the move had completed). A move that had
    not completed (a killed run) is undone without touching what is at the live path: it
    is still the old data, in part or whole."""
    path = aside.path
    if path is None:
        return None, True
    if aside.inside:
        moving = path if path.name.endswith(MOVING) else path.with_name(path.name + MOVING)
        if moving.is_dir():
            return moving, False
        if not path.is_dir():
            raise FileNotFoundError(2, "the moved-aside data is gone", str(path))
        return path, True
    if not path.is_dir():
        raise FileNotFoundError(2, "the moved-aside data is gone", str(path))
    if not any(path.iterdir()) and os.path.lexists(aside.live):
        return path, False  # the rename never happened (a data directory is never empty)
    return path, True


def _clear(aside: Aside, now: datetime) -> Path | None:
    """Move what is at the live path now out of the way, into a never-reused folder."""
    if aside.inside:
        if not aside.live.is_dir():
            aside.live.mkdir(parents=True)
            return None
        names = _entries(aside.live, aside.only)
        if not names:
            return None
        base = f"{_prefix_of(aside)}drkit-failed-restore-{now:{STAMP}}"
        failed = next(_names(aside.live, base, like=aside.live))
        for entry in names:
            os.rename(aside.live / entry, failed / entry)
        return failed
    if not aside.live.exists() and not aside.live.is_symlink():
        return None
    return _move_whole(Aside(aside.live, None), "failed-restore", now).path


def _prefix_of(aside: Aside) -> str:
    name = aside.path.name if aside.path is not None else ".drkit-"
    return name[: name.index("drkit-")]


def _entries(live: Path, only: tuple[str, ...] | None) -> list[str]:
    if only is not None:
        return [n for n in only if os.path.lexists(live / n)]
    return sorted(n for n in os.listdir(live) if not is_aside_name(n))


def _names(parent: Path, base: str, *, suffix: str = "", like: Path | None = None) -> Iterator[Path]:
    """Fresh empty folders `base`, `base-2`, ... (+ suffix), made with mkdir: a name that
    exists is never taken. Owned and permitted like `like` when given."""
    for n in range(1, _ATTEMPTS):
        candidate = parent / (f"{base}{suffix}" if n == 1 else f"{base}-{n}{suffix}")
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            continue
        if like is not None:
            st = like.stat()
            os.chmod(candidate, st.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.lchown(candidate, st.st_uid, st.st_gid)
        yield candidate


def _rmdir_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _known(label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"unknown aside label {label!r}")


def _why(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def kept(live: Path) -> list[Kept]:
    """Every aside of `live` still on disk: siblings (whole) and folders inside it."""
    found: list[Kept] = []
    sibling = re.compile(
        rf"^{re.escape(live.name)}\.(?:drkit-)?(?P<label>{_LABEL})(?:-\d{{8}}T\d{{6}}Z(?:-\d+)?)?$"
    )
    try:
        siblings = list(live.parent.iterdir()) if live.parent.is_dir() else []
    except OSError:
        siblings = []
    for path in siblings:
        m = sibling.match(path.name)
        if m and path.is_dir() and not path.is_symlink():
            found.append(Kept(path, live, m["label"], _size(path)))
    try:
        inside = list(live.iterdir()) if live.is_dir() else []
    except OSError:
        inside = []
    for path in inside:
        m = _INSIDE_RE.match(path.name)
        if m and path.is_dir() and not path.is_symlink():
            found.append(Kept(path, live, m["label"], _size(path), complete=not m["moving"]))
    return sorted(found, key=lambda k: k.path.name)


def _size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total
