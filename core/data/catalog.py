"""Catalog files: items, sellers, promotions, users (and RetailRocket's item properties and
category tree), upserted: a newer file updates the attributes it names, nothing is deleted.

The file's columns are mapped onto the kind's known columns in Python (``core.data.columns``) and read by
position (CSV fields, Parquet ``#i``) or by a JSON key spelled only with letters, digits and _; no name from
the file reaches SQL. Every row is loaded, a duplicate (its key was already in the file) or rejected with
its line and a reason: ``rows_read = loaded + rejected + duplicates``. The load holds the database's write
lock and is one transaction.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb

from core import store
from core.data.catalog_sql import KEYS, KINDS, REASONS, merge_args, upsert
from core.data.columns import ColumnMap, map_columns
from core.data.formats import (
    REJECTS_SCAN,
    REJECTS_TABLE,
    header_columns,
    is_event_log,
    looks_like,
    normalise,
    parquet_columns,
    sniff_delim,
)
from core.data.ingest_support import (
    IngestResult,
    _check_file,
    _line_of,
    _line_rejects,
    audit_load,
    merge,
    sha256_of,
)
from core.data.lines import JOINS_TABLE, csv_fields, json_keys_in, lines_reader
from core.data.sniff import Head, read_head
from core.errors import InputError
from core.release.roles import Account, Permission, require
from core.sql import lit

TEMP = ("cat", "checked", "good", "line_map", "merge_src", JOINS_TABLE, REJECTS_TABLE, REJECTS_SCAN)


def _file_columns(con, path: Path, head: Head) -> list[str]:
    """The file's column names as written, in order."""
    if head.kind == "parquet":
        return parquet_columns(con, path)
    if head.kind == "jsonl":
        return json_keys_in(con, path)
    return header_columns(head.lines[0], sniff_delim(head.lines[0]), path)


def detect_kind(cols: list[str], path: Path) -> str:
    c = {normalise(x) for x in cols}
    if is_event_log(list(c)):
        raise InputError(
            f"is an event log, not a catalog — it looks like {looks_like(path)}",
            file=str(path),
            line=1,
            fix="load it with `python -m core ingest` (Data page: Events)",
        )
    if set(KINDS["item_properties"]) <= c:
        return "item_properties"
    if set(KINDS["category_tree"]) <= c:
        return "category_tree"
    for kind, column in (
        ("promotions", "discount"),
        ("items", "item_id"),
        ("sellers", "seller_id"),
        ("users", "user_id"),
    ):
        if column in c:
            return kind
    looks = looks_like(path)
    raise InputError(
        "not a catalog file I know" + (f": it looks like {looks}" if looks else ""),
        file=str(path),
        line=1,
        fix="items need item_id; sellers seller_id; promotions discount; users user_id",
    )


def _stage(con, path: Path, head: Head, cmap: ColumnMap, kind: str) -> int:
    """Temp table ``cat``: line, raw, ``nf_reason`` (a row that is not a record: wrong column count,
    quoting, not a JSON object) and one trimmed VARCHAR per known column of ``kind`` (NULL where the file has
    none). Text is read line by line, so line numbers are exact and a line that is not UTF-8, or not JSON, is
    rejected on its own. Returns how many lines the line reader refused (in ``line_map``)."""
    wanted = KINDS[kind]
    con.execute("CREATE OR REPLACE TEMP TABLE line_map (line BIGINT, raw VARCHAR, reason VARCHAR)")

    def value(sql_of) -> str:
        return ", ".join(
            f"nullif(trim(CAST({sql_of(cmap.positions[c], c)} AS VARCHAR)), '') AS {c}"
            if c in cmap
            else f"NULL::VARCHAR AS {c}"
            for c in wanted
        )

    if head.kind == "parquet":
        every = ", ".join(f"coalesce(CAST(#{i + 1} AS VARCHAR), '')" for i in range(cmap.count))
        con.execute(f"""CREATE OR REPLACE TEMP TABLE cat AS
            SELECT file_row_number + 1 AS line, concat_ws(',', {every}) AS raw, NULL::VARCHAR AS nf_reason,
                   {value(lambda i, c: f"#{i + 1}")}
            FROM read_parquet({lit(path)}, file_row_number=true)""")
        return 0
    if head.kind == "jsonl":
        rows = f"""(SELECT ord, line AS raw,
                CASE WHEN NOT ok THEN 'not a valid JSON object — each line must be one {{…}} record' END
                  AS nf_reason, CASE WHEN ok THEN line END AS jl
            FROM (SELECT ord, line, coalesce(starts_with(ltrim(line), '{{') AND json_valid(line), false) AS ok
                  FROM {lines_reader(path)} WHERE trim(coalesce(line, '')) <> ''))"""
        picked = value(lambda i, c: f"json_extract_string(jl, {lit('$.' + json.dumps(cmap.spelled[c]))})")
    else:
        delim = sniff_delim(head.lines[0])
        rows = csv_fields(con, path, delim, cmap.labels(), head.first_line_no)
        picked = value(lambda i, c: f"f[{i + 1}]")
    con.execute(f"CREATE OR REPLACE TEMP TABLE cat_lines AS SELECT ord, raw, nf_reason, {picked} FROM {rows}")
    skipped = _line_rejects(con)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE cat AS
                    SELECT {_line_of(skipped)} AS line, * EXCLUDE (ord) FROM cat_lines s""")
    con.execute("DROP TABLE cat_lines")
    return skipped


def ingest_catalog(
    path, kind: str | None = None, *, actor: Account, db_path=None, progress=None
) -> IngestResult:
    """Upsert one catalog file; bad rows go to ``rejects`` with their line and reason, a key repeated in the
    file counts as a duplicate (the first row is loaded). ``actor`` must hold the ingest permission; the
    load is audited in its name, in the load's transaction."""
    require(actor, Permission.INGEST)
    started = time.perf_counter()
    path = _check_file(Path(path))
    head = read_head(path)
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown catalog kind '{kind}'", file=str(path), fix="use " + ", ".join(KINDS))
    digest = sha256_of(path)
    report = progress or (lambda fraction, message="": None)
    on_wait = lambda message: report(0.0, message)  # noqa: E731
    try:
        with (
            store.writing(db_path, on_wait=on_wait),
            store.connect(db_path, read_paths=[path], on_wait=on_wait) as con,
        ):
            for table in TEMP:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            result = _load(con, path, head, kind, digest, started, actor)
            for table in TEMP:
                con.execute(f"DROP TABLE IF EXISTS {table}")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(
            f"could not be loaded as a catalog: {first}", file=str(path), fix="check the file and its kind"
        ) from exc
    report(1.0, "done")
    return result


def _load(con, path: Path, head: Head, kind: str | None, digest: str, started: float, actor) -> IngestResult:
    columns = _file_columns(con, path, head)
    kind = kind or detect_kind(columns, path)
    if is_event_log([normalise(c) for c in columns]):
        detect_kind(columns, path)  # refuses, saying what the file looks like
    cmap = map_columns(columns, KINDS[kind], file=str(path), json_keys=head.kind == "jsonl")
    key = KINDS[kind][0]
    if kind != "promotions" and key not in cmap:
        raise InputError(
            f"missing required column {key} for {kind}", file=str(path), line=1, fix=f"add a {key} column"
        )
    skipped = _stage(con, path, head, cmap, kind)
    rows_read = con.execute("SELECT count(*) FROM cat").fetchall()[0][0] + skipped
    if rows_read == 0:
        raise InputError(
            "has a header but no rows", file=str(path), fix="export the catalog again with its rows"
        )
    return store.committed(con, lambda: audit_load(
        con, actor, "ingest_catalog", path,
        _write(con, path, head, kind, cmap, skipped, rows_read, digest, started), kind=kind,
    ))  # fmt: skip


def _write(con, path, head, kind, cmap: ColumnMap, skipped, rows_read, digest, started) -> IngestResult:
    """Rejects, the upsert and the ingests row, inside the caller's transaction."""
    ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked AS SELECT *, coalesce(nf_reason, {REASONS[kind]}) AS reason FROM cat"
    )
    con.execute(f"""CREATE OR REPLACE TEMP TABLE good AS SELECT * FROM checked WHERE reason IS NULL
                    QUALIFY row_number() OVER (PARTITION BY {KEYS[kind]} ORDER BY line) = 1""")
    raw_cols = " || ',' || ".join(f"coalesce({c}, '')" for c in KINDS[kind])
    con.execute(
        f"INSERT INTO rejects SELECT ?, line, coalesce(raw, {raw_cols}), reason FROM checked WHERE reason IS NOT NULL",
        [ingest_id],
    )
    con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM line_map", [ingest_id])
    rejected = con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?", [ingest_id]).fetchall()[0][0]
    loaded = con.execute("SELECT count(*) FROM good").fetchall()[0][0]
    present = set(cmap.positions)
    if kind in ("items", "users", "item_properties"):
        merge(con, *merge_args(kind, present))
    else:
        con.execute(upsert(kind, present))
    duplicates = rows_read - rejected - loaded
    fmt = {"parquet": "parquet", "jsonl": "jsonl"}.get(head.kind, "csv")
    note = cmap.ignored_note()
    seconds = time.perf_counter() - started
    con.execute(
        """INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now() - to_microseconds(?), now(), 'done', ?)""",
        [
            ingest_id,
            str(path),
            digest,
            fmt,
            kind,
            rows_read,
            loaded,
            rejected,
            duplicates,
            int(seconds * 1e6),
            note,
        ],
    )
    result = IngestResult(
        ingest_id, str(path), fmt, rows_read, loaded, rejected, duplicates, seconds, kind=kind
    )
    result.notes = [note] if note else []
    return result


__all__ = ["ingest_catalog", "detect_kind", "KINDS"]
