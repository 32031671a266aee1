"""Copy chosen rows back from a scratch copy (restored as of T) into the live database.

`--copy-back "nchat_messages where channel_id = '...'"`: the rows of TABLE matching the
condition in the scratch copy go into the live table in one transaction: through a
temporary table, then `INSERT ... ON CONFLICT (primary key) DO NOTHING`, so rows deleted
by mistake come back and rows present in both are left as they are (how many of those
differ is reported). The counts are shown before it commits; running it again inserts
nothing more. The table needs a primary key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import Service
from drkit.engines.runbooks.model import Step, StepContext, StepResult

SPEC = re.compile(
    r"^\s*(?P<table>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\s*(?:\s[Ww][Hh][Ee][Rr][Ee]\s+(?P<cond>.+))?$", re.S
)


@dataclass(frozen=True)
class CopyBack:
    schema: str
    table: str
    condition: str | None

    @property
    def relation(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))

    @property
    def where(self) -> sql.Composable:
        # The operator's own SQL, run on their own database as they typed it.
        return sql.SQL(" where ") + sql.SQL(self.condition) if self.condition else sql.SQL("")

    def describe(self) -> str:
        return f"{self.schema}.{self.table}" + (f" where {self.condition}" if self.condition else "")


def parse_copy_back(text: str) -> CopyBack:
    match = SPEC.match(text)
    if match is None:
        raise UsageError(f'--copy-back {text!r}: write it as "TABLE where CONDITION" (or just TABLE)')
    schema, _, table = match["table"].rpartition(".")
    return CopyBack(schema or "public", table, (match["cond"] or "").strip() or None)


def copy_back_step(index: int, text: str, port: int) -> Step:
    spec = parse_copy_back(text)

    def run(ctx: StepContext) -> StepResult:
        live = ctx.ws.stack.services[str(ctx.parameters["service"])]
        counts = copy_rows(live, spec, port, confirm=ctx.confirm, say=ctx.say)
        return StepResult(
            f"{spec.describe()}: {counts['at_target']} rows at T, {counts['live_before']} before, "
            f"{counts['inserted']} copied back, {counts['differ']} present in both but different "
            "(left as is)",
            {f"copy_back_{index}": counts},
        )

    def complete(ctx: StepContext) -> str | None:
        live = ctx.ws.stack.services[str(ctx.parameters["service"])]
        missing = _missing(live, spec, port)
        return f"{missing} rows of {spec.describe()} are still missing" if missing else None

    return Step(
        f"copy-back-{index}",
        f"copy back {spec.describe()} from the copy at T into the live database (one transaction)",
        run,
        destructive=True,
        after=complete,
        timeout=6 * 3600,
    )


def copy_rows(live: Service, spec: CopyBack, port: int, *, confirm: Any, say: Any) -> dict[str, int]:
    scratch_dsn = service_dsn(live, host="127.0.0.1", port=port)
    with connect(service_dsn(live), autocommit=False) as dst, connect(scratch_dsn) as src:
        columns, key = _shape(dst, spec)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        dst.execute(
            sql.SQL(
                "create temporary table drkit_copy_back on commit drop as select {} from {} limit 0"
            ).format(cols, spec.relation)
        )
        select = sql.SQL("copy (select {} from {}{}) to stdout (format binary)").format(
            cols, spec.relation, spec.where
        )
        with (
            src.cursor().copy(select) as out,
            dst.cursor().copy(
                sql.SQL("copy drkit_copy_back ({}) from stdin (format binary)").format(cols)
            ) as into,
        ):
            for block in out:
                into.write(block)
        counts = _counts(dst, spec, columns, key)
        say(
            f"{spec.describe()}: {counts['at_target']} rows at T, {counts['live_before']} now; "
            f"{counts['missing']} missing will be inserted, {counts['differ']} differ (left as is)"
        )
        if counts["missing"] and not confirm(f"insert {counts['missing']} rows into {spec.describe()}?"):
            dst.rollback()
            raise OperationError(f"copy back of {spec.describe()} declined; nothing was written")
        inserted = dst.execute(
            sql.SQL("insert into {} ({}) select {} from drkit_copy_back on conflict ({}) do nothing").format(
                spec.relation, cols, cols, sql.SQL(", ").join(sql.Identifier(k) for k in key)
            )
        ).rowcount
        dst.commit()
    return {**counts, "inserted": inserted}


def _shape(conn: Any, spec: CopyBack) -> tuple[list[str], list[str]]:
    rel = f"{spec.schema}.{spec.table}"
    columns = [
        r[0]
        for r in conn.execute(
            "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 "
            "and not attisdropped and attgenerated = '' order by attnum",
            (rel,),
        ).fetchall()
    ]
    if not columns:
        raise UsageError(f"no table {rel} in the live database")
    key = [
        r[0]
        for r in conn.execute(
            "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
            "and a.attnum = any(i.indkey) where i.indrelid = to_regclass(%s) and i.indisprimary",
            (rel,),
        ).fetchall()
    ]
    if not key:
        raise UsageError(f"{rel} has no primary key: rows cannot be copied back without duplicating them")
    return columns, key


def _counts(conn: Any, spec: CopyBack, columns: list[str], key: list[str]) -> dict[str, int]:
    join = sql.SQL(" and ").join(sql.SQL("c.{k} = t.{k}").format(k=sql.Identifier(k)) for k in key)
    mine = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in columns)
    theirs = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns)
    row = conn.execute(
        sql.SQL(
            "select (select count(*) from drkit_copy_back), (select count(*) from {rel}{where}), "
            "(select count(*) from drkit_copy_back c where not exists (select 1 from {rel} t where {join})), "
            "(select count(*) from drkit_copy_back c join {rel} t on {join} "
            "where row({mine}) is distinct from row({theirs}))"
        ).format(rel=spec.relation, where=spec.where, join=join, mine=mine, theirs=theirs)
    ).fetchone()
    return {"at_target": row[0], "live_before": row[1], "missing": row[2], "differ": row[3]}


def _missing(live: Service, spec: CopyBack, port: int) -> int:
    """Rows at T (in the scratch copy) whose key is not in the live table."""
    with connect(service_dsn(live, host="127.0.0.1", port=port)) as src, connect(service_dsn(live)) as dst:
        _columns, key = _shape(dst, spec)
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in key)
        wanted = src.execute(
            sql.SQL("select {} from {}{}").format(keys, spec.relation, spec.where)
        ).fetchall()
        present = {
            tuple(r) for r in dst.execute(sql.SQL("select {} from {}").format(keys, spec.relation)).fetchall()
        }
    return sum(1 for r in wanted if tuple(r) not in present)
