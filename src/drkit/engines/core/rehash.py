"""Re-hash every stored file of a backup against its manifest (the first step of every
verify, whatever the kind)."""

from __future__ import annotations

from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import IntegrityError
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace


def verify_files(ws: Workspace, m: Manifest) -> list[CheckResult]:
    directory = backup_dir(m.stack, m.service, m.backup_id)
    results: list[CheckResult] = []
    if not m.files:  # every kind stores at least one file; a restore would find nothing
        return [CheckResult("files", Status.FAILED, "the manifest lists no files")]
    bad = 0
    for f in m.files:
        key = f"{directory}/{f.name}"
        try:
            data = ws.repo.get(key)
        except FileNotFoundError:
            results.append(CheckResult(f"file {f.name}", Status.FAILED, "missing from the repository"))
            bad += 1
            continue
        except IntegrityError as exc:  # a link or a fifo where the file should be: never read
            results.append(CheckResult(f"file {f.name}", Status.FAILED, exc.message))
            bad += 1
            continue
        if len(data) != f.size:
            results.append(
                CheckResult(f"file {f.name}", Status.FAILED, f"size {len(data)} != {f.size} in the manifest")
            )
            bad += 1
        elif sha256(data) != f.sha256:
            results.append(
                CheckResult(f"file {f.name}", Status.FAILED, "SHA-256 does not match the manifest")
            )
            bad += 1
    if not bad:
        results.append(CheckResult("files", Status.OK, f"{len(m.files)} files match their SHA-256"))
    return results
