"""Text files read line by line in DuckDB, and CSV lines split into fields.

Every physical line is one VARCHAR value with its number (``lines_reader``): line numbers are exact, blank
lines keep their number, and a line that is not valid UTF-8 lands in DuckDB's rejects table with its
number. ``csv_fields`` splits the data lines (those after the header's line) into fields, quotes honoured.
A quoted field may hold a line break: such a record spans several physical lines, which are joined back
into one (numbered by its first line) when the join makes a well-formed record (``join_quoted_breaks``).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from core.data.formats import LINE_DELIM, REJECTS_SCAN, REJECTS_TABLE
from core.sql import lit

JOINS_TABLE = "hs_joined_lines"  # temp table (first, last) of the line spans that are one quoted record
MAX_SPAN = 200  # lines one quoted field may span
MAX_CANDIDATES = 10_000  # beyond this many unbalanced lines, no joining: each is rejected on its own


def lines_reader(path: Path) -> str:
    """Every physical line as one VARCHAR ``line`` with its ordinal ``ord``; blank lines are NULL, a UTF-8
    byte-order mark before the first line is dropped. Lines that are not valid UTF-8 are left out and
    recorded in ``REJECTS_TABLE`` with their number."""
    return (
        "(SELECT ordinality AS ord, CASE WHEN ordinality = 1 THEN ltrim(line, chr(65279)) ELSE line END AS line "
        f"FROM read_csv({lit(path)}, columns={{'line': 'VARCHAR'}}, "
        f"header=false, delim={lit(LINE_DELIM)}, quote='', escape='', auto_detect=false, "
        f"strict_mode=false, store_rejects=true, rejects_table={lit(REJECTS_TABLE)}, "
        f"rejects_scan={lit(REJECTS_SCAN)}) "
        "WITH ORDINALITY)"
    )


def json_keys_in(con, path: Path, limit: int = 1000) -> list[str]:
    """Every key of the file's JSON objects, over all its lines (a key only some records have, like
    ``rating``, counts too), in order of first appearance; at most ``limit`` + 1 (more is refused by
    ``core.data.columns``). The keys are data: fetched, then mapped in Python."""
    rows = con.execute(
        f"""SELECT k FROM (SELECT ord, unnest(json_keys(line)) AS k FROM {lines_reader(path)}
                           WHERE starts_with(ltrim(line), '{{') AND json_valid(line))
            GROUP BY k ORDER BY min(ord), k LIMIT {int(limit) + 1}"""
    ).fetchall()
    return [r[0] for r in rows]


def _odd_quotes(column: str) -> str:
    return f"(strlen({column}) - strlen(replace({column}, '\"', ''))) % 2 = 1"


def join_quoted_breaks(con, path: Path, delim: str, n: int, header_line: int) -> bool:
    """Find the records whose quoted field holds a line break (a line with an odd number of quotes, up to
    the next such line) and keep the spans that join into one record of ``n`` fields in temp table
    ``JOINS_TABLE``. Returns whether there are any (the usual file has none: one pass, nothing kept)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {JOINS_TABLE} (first BIGINT, last BIGINT)")
    odd = [
        r[0]
        for r in con.execute(
            f"SELECT ord FROM {lines_reader(path)} WHERE ord > ? AND {_odd_quotes('line')} ORDER BY ord "
            f"LIMIT {MAX_CANDIDATES + 1}",
            [header_line],
        ).fetchall()
    ]
    if len(odd) < 2 or len(odd) > MAX_CANDIDATES:
        return False
    spans = [(a, b) for a, b in zip(odd, odd[1:], strict=False) if b - a <= MAX_SPAN]
    if not spans:
        return False
    con.execute("CREATE OR REPLACE TEMP TABLE hs_spans (first BIGINT, last BIGINT)")
    con.executemany("INSERT INTO hs_spans VALUES (?, ?)", spans)
    text = dict(
        con.execute(
            f"SELECT l.ord, l.line FROM {lines_reader(path)} l JOIN hs_spans s ON l.ord BETWEEN s.first AND s.last"
        ).fetchall()
    )
    con.execute("DROP TABLE hs_spans")
    joins, start = [], None
    for ord_ in odd:
        if start is not None and ord_ - start <= MAX_SPAN:
            record = "\n".join(text.get(i) or "" for i in range(start, ord_ + 1))
            if _one_record(record, delim, n):
                joins.append((start, ord_))
                start = None
                continue
        start = ord_
    if joins:
        con.executemany(f"INSERT INTO {JOINS_TABLE} VALUES (?, ?)", joins)
    return bool(joins)


def _one_record(text: str, delim: str, n: int) -> bool:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True))
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == n


def records_reader(path: Path, joined: bool) -> str:
    """``lines_reader``, with the joined spans (``join_quoted_breaks``) as one record each when ``joined``."""
    if not joined:
        return lines_reader(path)
    return f"""(WITH l AS {lines_reader(path)}
        SELECT ord, line FROM l ANTI JOIN {JOINS_TABLE} j ON l.ord BETWEEN j.first AND j.last
        UNION ALL
        SELECT j.first AS ord, string_agg(coalesce(l.line, ''), chr(10) ORDER BY l.ord) AS line
        FROM l JOIN {JOINS_TABLE} j ON l.ord BETWEEN j.first AND j.last GROUP BY j.first)"""


def csv_fields(con, path: Path, delim: str, labels: list[str], header_line: int = 1) -> str:
    """Relation (ord, raw, nf_reason, f) splitting each data line (after ``header_line``) into its fields,
    quotes honoured, a quoted line break joined back into its record. ``labels``: what the messages call
    each column — our name for a known one, "column i" for the others (no name from the file goes into
    the SQL)."""
    n = len(labels)
    joined = join_quoted_breaks(con, path, delim, n, header_line) if n > 1 else False
    d = re.escape(delim)
    rx = lit(f'{d}("(?:[^"]|"")*"|[^{d}"]*)')
    shown = ",".join(labels)
    return f"""(SELECT ord, line AS raw, f,
              CASE WHEN q IS NOT NULL AND array_to_string(q, {lit(delim)}) <> line
                     THEN 'wrong quoting: a double quote is unbalanced or inside an unquoted field — '
                          || 'quote the whole field '
                          || 'and double any quote inside it'
                   WHEN len(f) <> {n}
                     THEN 'wrong column count: ' || len(f) || ' fields, expected ' || {lit(f"{n} ({shown})")}
                          || CASE WHEN len(f) > {n} THEN ' — quote fields that contain ' || {lit(delim)}
                                  ELSE ' — a field or a separator is missing' END
              END AS nf_reason
        FROM (SELECT ord, line, q,
                     CASE WHEN q IS NULL THEN string_split(line, {lit(delim)})
                          ELSE list_transform(q, lambda x: CASE WHEN starts_with(x, '"') AND length(x) > 1
                                                               THEN replace(x[2:-2], '""', '"') ELSE x END)
                     END AS f
              FROM (SELECT ord, line,
                           CASE WHEN contains(line, '"')
                                THEN regexp_extract_all({lit(delim)} || line, {rx}, 1) END AS q
                    FROM {records_reader(path, joined)}
                    WHERE ord > {int(header_line)} AND trim(coalesce(line, '')) <> '')))"""


def csv_native(path: Path, delim: str, n: int) -> str:
    """DuckDB's parallel CSV parser (fields c1..cn as VARCHAR); rows it cannot parse go to its rejects
    table. Only for files whose header is on line 1."""
    cols = "{" + ", ".join(f"'c{i + 1}': 'VARCHAR'" for i in range(n)) + "}"
    return (
        f"(SELECT ordinality + 1 AS ord, NULL::VARCHAR AS raw, NULL::VARCHAR AS nf_reason, * "
        f"FROM read_csv({lit(path)}, columns={cols}, header=true, delim={lit(delim)}, quote='\"', "
        f"escape='\"', auto_detect=false, store_rejects=true, rejects_table={lit(REJECTS_TABLE)}, "
        f"rejects_scan={lit(REJECTS_SCAN)}) WITH ORDINALITY)"
    )
