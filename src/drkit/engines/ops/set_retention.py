"""Which stack-wide sets `drkit prune` keeps: grandfather-father-son over the sets' moments
(`sets: {retention: ...}` in stack.yaml, the same rules and defaults as a service's), and
always the newest set. A set pins every backup it names (and PostgreSQL's WAL up to its
restore point), so sets kept forever would keep every backup `backup --all` ever took.

Sets go before the backups they named (the service prunes run after, with only the kept
sets as facts): a kill in between leaves backups no set needs, which the next prune removes.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.domain.errors import RepositoryError
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import Retention
from drkit.engines.core.layout import journals_prefix
from drkit.engines.core.set_refs import list_sets, set_key, sets_prefix
from drkit.engines.core.signing import SIGNATURE_SUFFIX
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.leftovers import Leftover, describe_leftovers, sweep_leftovers
from drkit.engines.ops.retention_policy import BackupFact, Decision, gfs
from drkit.infra import locks

SET_LOCK = "stack-set"  # the lock `backup --all` writes a set under (engines/stack/sets.py)


@dataclass(frozen=True)
class SetPlan:
    keep: tuple[Decision, ...]  # newest first
    drop: tuple[Decision, ...]  # oldest first
    done: bool = False
    leftovers: tuple[Leftover, ...] = ()  # of killed writes of sets and journals

    @property
    def dropped(self) -> frozenset[str]:
        return frozenset(d.name for d in self.drop)

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": not self.done,
            "keep": [vars(d) for d in self.keep],
            "drop": [vars(d) for d in self.drop],
            "leftovers": [item.to_dict() for item in self.leftovers],
        }


def decide_sets(sets: list[RestoreSet], retention: Retention) -> SetPlan:
    """A pure decision: each kept set with the first rule that keeps it."""
    facts = [BackupFact(s.set_id, "set", s.created_at, False, None) for s in sets]
    newest_first = sorted(facts, key=lambda f: (f.finished_at, f.backup_id), reverse=True)
    reasons: dict[str, Decision] = {}
    if newest_first:
        reasons[newest_first[0].backup_id] = Decision(newest_first[0].backup_id, "newest", "the newest set")
    for fact, rule, why in gfs(newest_first, retention):
        reasons.setdefault(fact.backup_id, Decision(fact.backup_id, rule, why))
    keep = tuple(reasons[f.backup_id] for f in newest_first if f.backup_id in reasons)
    why = (
        f"outside the sets' retention (keep_last {retention.keep_last or 0}, keep_daily "
        f"{retention.keep_daily}, keep_weekly {retention.keep_weekly}, keep_monthly {retention.keep_monthly})"
    )
    drop = tuple(
        Decision(f.backup_id, "unkept", why) for f in reversed(newest_first) if f.backup_id not in reasons
    )
    return SetPlan(keep, drop)


def prune_sets(ws: Workspace, *, dry_run: bool) -> SetPlan:
    """Plan (and unless `dry_run`, remove) the sets the retention no longer keeps. A set that
    cannot be read stops everything: deleting backups without knowing what it needs could
    break it."""
    if dry_run:
        plan = decide_sets(_sets(ws), ws.stack.set_retention)
        return SetPlan(plan.keep, plan.drop, leftovers=_leftovers(ws, dry_run=True))
    with locks.exclusive(ws.lock_dir, SET_LOCK, "prune"):
        plan = decide_sets(_sets(ws), ws.stack.set_retention)
        for doomed in plan.drop:
            key = set_key(ws.stack.name, doomed.name)
            ws.repo.delete(key)
            if ws.repo.exists(key + SIGNATURE_SUFFIX):  # an unsigned copy of a signed repository's set
                ws.repo.delete(key + SIGNATURE_SUFFIX)
        leftovers = _leftovers(ws, dry_run=False)
    return SetPlan(plan.keep, plan.drop, done=True, leftovers=leftovers)


def _leftovers(ws: Workspace, *, dry_run: bool) -> tuple[Leftover, ...]:
    """Killed writes of sets and journals (rule `leftover`, engines/ops/leftovers.py)."""
    stack = ws.stack.name
    return sweep_leftovers(ws, sets_prefix(stack), dry_run=dry_run) + sweep_leftovers(
        ws, journals_prefix(stack), dry_run=dry_run
    )


def _sets(ws: Workspace) -> list[RestoreSet]:
    try:
        return list_sets(ws)
    except (ValueError, KeyError) as exc:
        raise RepositoryError(f"a set in {ws.repo.location} is unreadable ({exc}); pruning nothing") from exc


def describe_sets(plan: SetPlan) -> list[str]:
    verb = "removed" if plan.done else "would remove"
    lines = [f"sets: {verb} {len(plan.drop)} set(s); keeping {len(plan.keep)}"]
    lines += [f"  keep {d.name}: {d.rule}: {d.why}" for d in plan.keep]
    lines += [f"  {verb} {d.name}: {d.rule}: {d.why}" for d in plan.drop]
    return lines + describe_leftovers(plan.leftovers, done=plan.done)
