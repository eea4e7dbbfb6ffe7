"""Load event logs and catalogs into the store, in one transaction each, streaming through DuckDB.

Every row is either loaded, counted as a duplicate, rejected with its line number, raw text and a reason a
person can act on, or left out as a forgotten shopper's (``core.data.forgotten``):
``rows_read = loaded + rejected + duplicates + forgotten``.
A whole-file problem raises ``InputError`` and writes nothing (no events, no ingests row).

The file is checked first (``core.data.sniff``: what it is; a file that is not the ``--format`` given is
refused, saying what it looks like), then parsed once into the temp table ``stage`` (``core.data.stage``),
and every write is derived from ``stage`` inside one transaction, so nothing is ever deleted from ``events``
(deleting from rows appended in the same transaction makes DuckDB re-append all of them at commit).
Duplicates (``core.data.duplicates``) are left out of the insert. Items and users are derived, rejects and
the ingests row recorded, all in the same transaction. The whole load holds the database's write lock
(``store.writing``): two loads of one file from two browser tabs run one after the other, and the second
finds every row a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from core import store
from core.data import formats
from core.data.catalog import ingest_catalog
from core.data.duplicates import find_duplicates
from core.data.forgotten import forgotten_note, leave_out_forgotten
from core.data.formats import detect_format, looks_like
from core.data.ingest_support import (
    IngestResult,
    _check_file,
    _Digest,
    _line_of,
    _Steps,
    audit_load,
    flush_in_background,
    ingest_history,
    merge,
    rejects_for,
)
from core.data.sniff import check_sequence_fits, read_head
from core.data.stage import Staged, drop_temp, stage_fast, stage_lines
from core.errors import InputError, StudioError
from core.release.roles import Account, Permission, require

Progress = Callable[[float, str], None]
_stage_fast, _stage = stage_fast, stage_lines  # module names the tests replace


def ingest_events(
    path,
    fmt: str | None = None,
    *,
    actor: Account,
    db_path=None,
    mapping: dict | None = None,
    progress: Progress | None = None,
    source: str | None = None,
) -> IngestResult:
    """Load one event log. ``fmt`` None = detect from the header; ``mapping``: canonical → source column
    (native files); ``source``: label stored in ``events.source`` (default: the file's own or the format).
    Any file the process can read is loaded (the CLI's operator chose it); the app confines its paths to
    the import folders first (``core.data.imports``). ``actor`` must hold the ingest permission; the load
    is audited in its name, in the load's transaction."""
    require(actor, Permission.INGEST)
    started = time.perf_counter()
    report = progress or (lambda fraction, message="": None)
    path = _check_file(Path(path))
    if fmt is not None and fmt not in formats.FORMATS:
        raise InputError(
            f"unknown format '{fmt}'", file=str(path), fix="use one of " + ", ".join(formats.FORMATS)
        )
    report(0.0, "detecting the format")
    head = read_head(path)
    fmt = fmt or ("native" if mapping else detect_format(path))
    if fmt in ("sequence", "pairs"):
        check_sequence_fits(path, fmt, head, looks_like(path))
    digest = _Digest(path)
    on_wait = lambda message: report(0.0, message)  # noqa: E731
    try:
        with (
            store.writing(db_path, on_wait=on_wait),
            store.connect(db_path, read_paths=[path], on_wait=on_wait) as con,
        ):
            result = _ingest(
                con, path, fmt, head.first_line_no, mapping, source, digest, report, started, actor
            )
    except duckdb.Error as exc:  # what DuckDB said, as one sentence with the file named
        first = str(exc).strip().splitlines()[0]
        raise InputError(
            f"could not be loaded as {fmt}: {first}", file=str(path), fix="check the file and its format"
        ) from exc
    result.seconds = time.perf_counter() - started
    report(1.0, "done")
    return result


def _ingest(
    con, path: Path, fmt, header_line, mapping, source, digest, report, started, actor
) -> IngestResult:
    """Stage the file, then write everything from ``stage`` in one transaction (write lock held)."""
    drop_temp(con)
    steps = _Steps()
    report(0.05, f"reading {fmt}")
    staged = None
    fast = fmt in ("native", "rees46", "retailrocket") and path.suffix != ".gz" and header_line == 1
    if fast and formats.file_kind(path) == "text":
        staged = _stage_fast(con, path, fmt, mapping, source, digest, report)
    if staged is None:  # not CSV, or the file has irregular lines: stage it line by line
        drop_temp(con)
        steps = _Steps()
        staged = _stage(con, path, fmt, mapping, source)
    if staged.rows + staged.skipped == 0:
        raise InputError("has a header but no rows", file=str(path), fix="export the log again with its rows")
    steps("read")
    result = store.committed(con, lambda: audit_load(
        con, actor, "ingest", path, _load(con, path, fmt, digest, staged, started, report, steps), format=fmt
    ))  # fmt: skip
    drop_temp(con)
    steps("commit")
    result.steps = steps.seconds
    return result


def _record(con, ingest_id: int, path: Path, fmt: str, digest, counts: tuple, notes, started) -> IngestResult:
    """The ingests row, inside the load's transaction. ``counts``: (loaded, rejected, duplicates, left out as
    forgotten shoppers'); ``notes``: sentences for the report, kept in the row's note."""
    loaded, rejected, n_dups, forgotten = counts
    rows_read = loaded + rejected + n_dups + forgotten
    result = IngestResult(
        ingest_id, str(path), fmt, rows_read, loaded, rejected, n_dups, time.perf_counter() - started
    )
    result.forgotten, result.notes = forgotten, list(notes)
    note = "; ".join(notes) or None
    con.execute(
        """INSERT INTO ingests VALUES (?, ?, ?, ?, 'events', ?, ?, ?, ?, now() - to_microseconds(?), now(),
           'done', ?)""",
        [
            ingest_id,
            str(path),
            digest.result(),
            fmt,
            rows_read,
            loaded,
            rejected,
            n_dups,
            int(result.seconds * 1e6),
            note,
        ],
    )
    return result


def _load(
    con, path: Path, fmt: str, digest, staged: Staged, started: float, report: Progress, steps: _Steps
) -> IngestResult:
    """The writes from ``stage``, inside the caller's transaction. ``staged.ident``: what names a ``stage``
    row — ``rid`` (its rowid; rejected rows are in ``bad``) or ``ord, k`` (line, position in a sequence
    line); ``staged.constants``: event columns left out of ``stage``, with their one value."""
    forgotten, shoppers = leave_out_forgotten(con, fmt)
    report(0.5, "finding duplicates")
    n_dups = find_duplicates(con, staged.ident)
    steps("duplicates")
    ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
    report(0.6, "loading events")
    if not n_dups:
        anti = ""
    elif staged.ident == "rid":
        anti = "AND s.rowid NOT IN (SELECT rid FROM dups)"
    else:
        anti = "AND NOT EXISTS (SELECT 1 FROM dups d WHERE d.ord = s.ord AND d.k = s.k)"
    columns = ", ".join(staged.constants.get(c, c) for c in formats.CANONICAL)  # constants: not staged
    # stored order carries no meaning: the instance writes in parallel (core.shared_db.lock_down)
    con.execute(
        f"INSERT INTO events SELECT {columns}, ? FROM stage s WHERE reason IS NULL {anti}", [ingest_id]
    )
    flushing = flush_in_background(con)
    steps("events")
    try:
        rejected = _write_items_users_rejects(con, fmt, staged, ingest_id, report, steps)
    finally:  # never leave the thread holding DuckDB's descriptor past the transaction
        flushing.join()
    counts = (staged.good - forgotten - n_dups, rejected, n_dups, forgotten)
    notes = [n for n in (staged.columns.ignored_note(), forgotten_note(forgotten, shoppers)) if n]
    return _record(con, ingest_id, path, fmt, digest, counts, notes, started)


def _write_items_users_rejects(
    con, fmt: str, staged: Staged, ingest_id: int, report: Progress, steps: _Steps
) -> int:
    """Items, users and rejects from ``stage``, inside the load's transaction; returns how many rows were
    rejected."""
    report(0.85, "updating items and users")
    _upsert_items_from_events(con, fmt)
    steps("items")
    _upsert_users(con)
    steps("users")
    if staged.ident == "rid":
        con.execute("INSERT INTO rejects SELECT ?, ord, raw, reason FROM bad", [ingest_id])
    else:  # a sequence line yields several events: one bad line is one rejected row
        con.execute(
            f"""INSERT INTO rejects
            SELECT ?, {_line_of(staged.skipped)}, any_value(raw), any_value(reason) FROM stage s
            WHERE reason IS NOT NULL GROUP BY s.ord""",
            [ingest_id],
        )
        con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM line_map", [ingest_id])
    return con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?", [ingest_id]).fetchall()[0][0]


def _upsert_items_from_events(con, fmt: str) -> None:
    """Items named by the file's good rows, from temp table ``item_attrs`` (REES46: category, brand and
    the latest price from the rows — a catalog file's values are kept unless empty); items missing from the
    catalog are created with unknown attributes."""
    if fmt != "rees46":
        merge(con, "items", "item_id", "item_attrs", ["item_id"], None)
        return
    keep = "CASE WHEN t.from_catalog AND t.{c} IS NOT NULL THEN t.{c} ELSE coalesce(s.{c}, t.{c}) END"
    merge(
        con,
        "items",
        "item_id",
        "item_attrs",
        ["item_id", "category", "brand", "price"],
        ", ".join(f"{c} = {keep.format(c=c)}" for c in ("category", "brand", "price")),
    )


def _upsert_users(con) -> None:
    """Users of the file's good rows (temp table ``user_first``); first_seen = their earliest event."""
    merge(
        con,
        "users",
        "user_id",
        "user_first",
        ["user_id", "first_seen"],
        "first_seen = least(coalesce(t.first_seen, s.first_seen), s.first_seen)",
    )


__all__ = [
    "IngestResult",
    "StudioError",
    "ingest_events",
    "ingest_catalog",
    "detect_format",
    "ingest_history",
    "rejects_for",
]
