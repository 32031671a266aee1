"""Which cluster a WAL archive belongs to (like pgBackRest's `archive.info`).

`<stack>/<service>/wal/identity.json` records the system identifier of the cluster whose
WAL the archive holds, the WAL page magic (it changes with every major version), the major
and the segment size. The first push writes it (create-if-absent: of two clusters pushing
into one empty archive, one wins and the other is refused); every later push checks the
segment it stores against it, and every fetch checks it exists and matches the server it
serves. Each is read from the files themselves, without a connection: a segment's first
page starts with PostgreSQL's long page header (system identifier, segment size), and a
data directory's `global/pg_control` starts with the system identifier.
"""

from __future__ import annotations

import json
import os
import pwd
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drkit.adapters.repository.port import Repository
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import IntegrityError, RepositoryError
from drkit.domain.wal import PARTIAL_RE, SEGMENT_RE

IDENTITY_NAME = "identity.json"
FORMAT = 1

# XLogLongPageHeaderData: magic u16, info u16, tli u32, pageaddr u64, rem_len u32 (padded to
# 24), then sysid u64, seg_size u32, xlog_blcksz u32. Native byte order, as written.
_LONG_HEADER = struct.Struct("=HHIQI4xQII")
_XLP_LONG_HEADER = 0x0002


@dataclass(frozen=True)
class WalHeader:
    """The long page header at the start of every WAL segment (and `.partial`)."""

    system_identifier: str
    page_magic: int
    timeline: int
    segment_size: int


def read_wal_header(raw: bytes) -> WalHeader | None:
    """The header of a segment's first page; None when `raw` does not start with one (a
    history file, or bytes that are not PostgreSQL's WAL)."""
    if len(raw) < _LONG_HEADER.size:
        return None
    magic, info, tli, pageaddr, _rem, sysid, seg_size, blcksz = _LONG_HEADER.unpack_from(raw)
    plausible = (
        info & _XLP_LONG_HEADER
        and magic >> 12 == 0xD  # every WAL magic since 9.x is 0xD0nn or 0xD1nn
        and _power_of_two(seg_size, 1 << 20, 1 << 30)
        and _power_of_two(blcksz, 1 << 10, 1 << 16)
        and pageaddr % seg_size == 0
        and sysid != 0
    )
    if not plausible:
        return None
    return WalHeader(str(sysid), magic, tli, seg_size)


def _power_of_two(value: int, low: int, high: int) -> bool:
    return low <= value <= high and value & (value - 1) == 0


@dataclass(frozen=True)
class LocalCluster:
    """The cluster a data directory holds: what a fetch must serve WAL for."""

    system_identifier: str
    major: int | None
    data_dir: str


def read_data_dir(data_dir: Path) -> LocalCluster | None:
    """From `global/pg_control` (its first field is the system identifier) and `PG_VERSION`;
    None when `data_dir` is not a PostgreSQL data directory (or cannot be read)."""
    try:
        with open(data_dir / "global" / "pg_control", "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if len(head) != 8:
        return None
    (sysid,) = struct.unpack("=Q", head)
    try:
        major: int | None = int((data_dir / "PG_VERSION").read_text().strip().split(".")[0])
    except (OSError, ValueError):
        major = None
    return LocalCluster(str(sysid), major, str(data_dir))


@dataclass(frozen=True)
class ArchiveIdentity:
    system_identifier: str
    page_magic: int | None
    major: int | None
    segment_size: int | None
    created_at: str
    created_by: str

    @classmethod
    def first(cls, header: WalHeader, name: str, major: int | None) -> ArchiveIdentity:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        return cls(
            header.system_identifier, header.page_magic, major, header.segment_size, now, f"push of {name}"
        )

    def to_bytes(self) -> bytes:
        """One line of JSON (a signed repository appends its signature on the next line)."""
        data = {"format": FORMAT, **self.__dict__}
        return (json.dumps(data, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes) -> ArchiveIdentity:
        """ValueError names what is wrong."""
        try:
            data = json.loads(raw.decode().splitlines()[0])
        except (UnicodeDecodeError, IndexError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict) or not str(data.get("system_identifier", "")).isdigit():
            raise ValueError("no system_identifier")
        if int(data.get("format", 0)) > FORMAT:
            raise ValueError(f"format {data['format']} is newer than this drkit reads ({FORMAT})")
        return cls(
            system_identifier=str(data["system_identifier"]),
            page_magic=_int_or_none(data.get("page_magic")),
            major=_int_or_none(data.get("major")),
            segment_size=_int_or_none(data.get("segment_size")),
            created_at=str(data.get("created_at", "")),
            created_by=str(data.get("created_by", "")),
        )

    def describe(self) -> str:
        version = f"PostgreSQL {self.major}" if self.major else f"WAL page magic {self.page_magic or '?'}"
        return f"system {self.system_identifier} ({version})"

    def mismatch(self, header: WalHeader) -> str | None:
        """Why a segment with `header` is not this archive's, or None."""
        if header.system_identifier != self.system_identifier:
            return f"it is from system {header.system_identifier}"
        if self.page_magic is not None and header.page_magic != self.page_magic:
            return (
                f"its WAL page magic {header.page_magic:#06x} is another major's than {self.page_magic:#06x}"
            )
        return None


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


class IdentityGuard:
    """The identity rules of one archive, for its pushes and fetches. `local`: the cluster
    served (a fetch) or archived for (a push), when this process knows it."""

    def __init__(self, repo: Repository, prefix: str, local: LocalCluster | None) -> None:
        self.repo, self.prefix, self.local = repo, prefix, local
        self.key = f"{prefix}{IDENTITY_NAME}"
        self.known: ArchiveIdentity | None = None
        self._checked = False

    def where(self) -> str:
        return f"{self.repo.location}/{self.prefix.rstrip('/')}"

    def read(self) -> ArchiveIdentity | None:
        """The recorded identity (authenticated when the repository signs); None when the
        archive has none (new, or written before drkit kept one)."""
        try:
            raw = self.repo.get(self.key)
        except FileNotFoundError:
            return None
        try:
            return ArchiveIdentity.parse(raw)
        except ValueError as exc:
            raise RepositoryError(f"the WAL archive identity {self.key} is unreadable: {exc}") from None

    def admit(self, name: str, raw: bytes) -> None:
        """Push: refuse another cluster's WAL; the first segment pushed records whose it is."""
        header = read_wal_header(raw) if SEGMENT_RE.match(name) or PARTIAL_RE.match(name) else None
        if header is None:
            return  # a history or backup-label file: text, no header to check
        known = self.known or self.read()
        if known is None:
            local = self.local
            major = local.major if local and local.system_identifier == header.system_identifier else None
            known = ArchiveIdentity.first(header, name, major)
            try:
                self.repo.put(self.key, known.to_bytes(), overwrite=False)
            except FileExistsError:  # another cluster's first push won the race
                known = self.read() or known
        self.known = known
        why = known.mismatch(header)
        if why is not None:
            raise IntegrityError(
                f"refusing to archive {name}: {why}, and the archive at {self.where()} holds "
                f"{known.describe()}'s WAL (two clusters archiving into one repository?)",
                hint="give this cluster its own repository path or service name; after a major "
                "upgrade (a new system), start a new archive and take a new base backup",
            )

    def require_ours(self) -> None:
        """Fetch, once: the identity, when recorded, is the served cluster's."""
        if self._checked:
            return
        known, local = self.read(), self.local
        if known is not None and local is not None:
            same = known.system_identifier == local.system_identifier
            if not same or (known.major and local.major and known.major != local.major):
                raise IntegrityError(
                    f"the WAL archive at {self.where()} holds {known.describe()}'s WAL; the server "
                    f"in {local.data_dir} is system {local.system_identifier} (PostgreSQL "
                    f"{local.major or '?'}): another cluster's archive",
                    hint="check the repository path, stack and service names in the configuration",
                )
        self.known, self._checked = known, True

    def require_system(self, system_identifier: str, what: str) -> None:
        """Plan: the archive, when it has an identity, holds the WAL of `what`'s cluster (a
        backup of another cluster restores from its own archive, never from this one)."""
        known = self.read()
        if known is not None and known.system_identifier != system_identifier:
            raise IntegrityError(
                f"{what} is of system {system_identifier}, but the WAL archive at {self.where()} "
                f"holds {known.describe()}'s WAL: its recovery could not use it",
                hint="check the repository path, stack and service names in the configuration",
            )

    def confirm_absent(self, name: str) -> None:
        """Before a fetch answers "no such file": the archive itself is still there. A missing
        repository, an unmounted mount point, or a path that means another directory for this
        user lack the file too, and must stop recovery, not end it."""
        if self.read() is not None:
            return
        if self.known is not None:
            raise RepositoryError(f"the WAL archive at {self.where()} lost its identity file while in use")
        if not self.repo.list(self.prefix):
            raise RepositoryError(
                f"cannot answer for {name}: the WAL archive at {self.where()} is missing or empty "
                f"(no identity, no WAL; as seen by user {_user()}): is the repository mounted, and "
                f"does its path mean the same for every user?"
            )

    def check_header(self, name: str, raw: bytes) -> None:
        """Fetch: a segment's header names the archive's system and the served one."""
        header = read_wal_header(raw)
        if header is None:
            return
        known, local = self.known, self.local
        why = known.mismatch(header) if known else None
        if why is None and local and header.system_identifier != local.system_identifier:
            why = f"it is from system {header.system_identifier}, the server in {local.data_dir} is "
            why += local.system_identifier
        if why is not None:
            raise IntegrityError(f"archived {name} is not this cluster's WAL: {why}; refusing to replay it")


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def identity_check(guard: IdentityGuard, name: str, system_identifier: str, major: int) -> CheckResult:
    """`drkit check`: does the archive belong to the running server? An archive without an
    identity gets one from the next WAL push (never from `check`: an empty directory may be
    an unmounted mount point, and the pushed segment's own header is the sound source)."""
    known = guard.read()
    if known is None:
        return CheckResult(
            name,
            Status.WARNING,
            f"{guard.where()} has no identity yet: the next WAL push records it "
            f"(`select pg_switch_wal()` makes one now)",
            critical=False,
        )
    if known.system_identifier != system_identifier or (known.major and known.major != major):
        return CheckResult(
            name,
            Status.FAILED,
            f"{guard.where()} holds {known.describe()}'s WAL, but this server is system "
            f"{system_identifier} (PostgreSQL {major}): restores from it would fail; give this "
            f"server its own repository path or service name",
        )
    return CheckResult(name, Status.OK, f"{guard.where()} holds this server's WAL ({known.describe()})")
