"""Catalog files: items, sellers, promotions, users (and RetailRocket's item properties and
category tree), upserted: a newer file updates attributes, nothing is deleted."""

from __future__ import annotations

import time
from pathlib import Path

from core import store
from core.data import readers
from core.data.formats import (
    REJECTS_SCAN,
    REJECTS_TABLE,
    file_kind,
    first_lines,
    header_columns,
    ident,
    lit,
    sniff_delim,
)
from core.data.ingest_support import IngestResult, _check_file, _line_of, _line_rejects, merge, sha256_of
from core.errors import InputError

KINDS = {
    "items": [
        "item_id",
        "title",
        "category",
        "brand",
        "seller_id",
        "price",
        "image_url",
        "in_stock",
        "created_at",
    ],
    "sellers": ["seller_id", "name", "tier", "onboarded_at"],
    "promotions": ["promotion_id", "item_id", "category", "discount", "starts_at", "ends_at"],
    "users": ["user_id", "first_seen", "region", "device", "segment"],
    "item_properties": ["timestamp", "itemid", "property", "value"],
    "category_tree": ["categoryid", "parentid"],
}
TS = "coalesce(try_cast({c} AS TIMESTAMP), try_cast(try_cast({c} AS TIMESTAMPTZ) AS TIMESTAMP))"


def _columns(con, path: Path) -> tuple[list[str], str]:
    kind = file_kind(path)
    if kind == "empty":
        raise InputError("the file is empty", file=str(path), fix="export the catalog again")
    if kind == "parquet":
        src = f"read_parquet({lit(path)})"
    elif kind == "jsonl":
        src = f"read_json({lit(path)}, format='newline_delimited')"
    else:
        line = first_lines(path, 1)[0]
        return [c.lower() for c in header_columns(line, sniff_delim(line))], "csv"
    cols = [r[0].lower() for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    return cols, kind


def detect_kind(cols: list[str], path: Path) -> str:
    c = set(cols)
    if set(KINDS["item_properties"]) <= c:
        return "item_properties"
    if set(KINDS["category_tree"]) <= c:
        return "category_tree"
    if "discount" in c:
        return "promotions"
    if "item_id" in c:
        return "items"
    if "seller_id" in c:
        return "sellers"
    if "user_id" in c:
        return "users"
    raise InputError(
        f"not a catalog file I know: columns {', '.join(cols)}",
        file=str(path),
        line=1,
        fix="items need item_id; sellers seller_id; promotions discount; users user_id",
    )


def _stage(con, path: Path, kind: str, file_type: str) -> int:
    """Temp table ``cat`` of VARCHAR columns + line number, ``nf_reason`` (a row that is not a record: wrong
    column count or quoting) and ``raw`` (the line, CSV only). CSV is read line by line, so line numbers are
    exact and a line that is not UTF-8 is rejected on its own. Returns how many such lines there were."""
    skipped = 0
    con.execute("CREATE OR REPLACE TEMP TABLE line_map (line BIGINT, raw VARCHAR, reason VARCHAR)")
    if file_type == "parquet":
        con.execute(f"""CREATE OR REPLACE TEMP TABLE cat AS
                        SELECT file_row_number + 1 AS line, NULL::VARCHAR AS nf_reason, NULL::VARCHAR AS raw,
                               * EXCLUDE (file_row_number)
                        FROM read_parquet({lit(path)}, file_row_number=true)""")
    elif file_type == "jsonl":
        con.execute(f"""CREATE OR REPLACE TEMP TABLE cat AS
                        SELECT row_number() OVER () AS line, NULL::VARCHAR AS nf_reason, NULL::VARCHAR AS raw, *
                        FROM read_json({lit(path)}, format='newline_delimited')""")
    else:
        first = first_lines(path, 1)[0]
        delim = sniff_delim(first)
        header = header_columns(first, delim)
        fields = ", ".join(f"nullif(f[{i + 1}], '') AS {ident(h.lower())}" for i, h in enumerate(header))
        con.execute(f"""CREATE OR REPLACE TEMP TABLE cat_lines AS
                        SELECT ord, raw, nf_reason, {fields}
                        FROM {readers._csv_fields(path, delim, len(header), header)}""")
        skipped = _line_rejects(con)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE cat AS
                        SELECT {_line_of(skipped)} AS line, * EXCLUDE (ord) FROM cat_lines s""")
        con.execute("DROP TABLE cat_lines")
    names = [r[0] for r in con.execute("DESCRIBE cat").fetchall()]
    for n in names:
        if n != n.lower():
            con.execute(f'ALTER TABLE cat RENAME "{n}" TO "{n.lower()}"')
    for col in KINDS[kind]:
        if col not in [n.lower() for n in names]:
            con.execute(f'ALTER TABLE cat ADD COLUMN "{col}" VARCHAR')
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cat AS SELECT * REPLACE ("
        + ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in KINDS[kind])
        + ") FROM cat"
    )
    return skipped


REASONS = {
    "items": """CASE
        WHEN item_id IS NULL OR trim(item_id) = '' THEN 'missing item_id — every catalog row needs one'
        WHEN price IS NOT NULL AND trim(price) <> '' AND try_cast(price AS DOUBLE) IS NULL
            THEN 'price ''' || price || ''' is not a number'
        WHEN try_cast(price AS DOUBLE) < 0 THEN 'negative price ' || price
        WHEN in_stock IS NOT NULL AND trim(in_stock) <> '' AND try_cast(in_stock AS BOOLEAN) IS NULL
            THEN 'in_stock ''' || in_stock || ''' is not true/false'
        WHEN created_at IS NOT NULL AND trim(created_at) <> '' AND {created} IS NULL
            THEN 'created_at ''' || created_at || ''' is not a date'
        END""".format(created=TS.format(c="created_at")),
    "sellers": """CASE
        WHEN seller_id IS NULL OR trim(seller_id) = '' THEN 'missing seller_id'
        WHEN onboarded_at IS NOT NULL AND trim(onboarded_at) <> '' AND {t} IS NULL
            THEN 'onboarded_at ''' || onboarded_at || ''' is not a date'
        END""".format(t=TS.format(c="onboarded_at")),
    "promotions": """CASE
        WHEN coalesce(trim(item_id), '') = '' AND coalesce(trim(category), '') = ''
            THEN 'a promotion needs an item_id or a category'
        WHEN try_cast(discount AS DOUBLE) IS NULL THEN 'discount ''' || coalesce(discount, '') || ''' is not a number'
        WHEN try_cast(discount AS DOUBLE) < 0 OR try_cast(discount AS DOUBLE) > 100
            THEN 'discount ' || discount || ' is outside 0–1 (or 0–100 %)'
        WHEN {s} IS NULL THEN 'starts_at ''' || coalesce(starts_at, '') || ''' is not a date'
        WHEN ends_at IS NOT NULL AND trim(ends_at) <> '' AND {e} IS NULL
            THEN 'ends_at ''' || ends_at || ''' is not a date'
        WHEN {e} < {s} THEN 'ends_at is before starts_at'
        END""".format(s=TS.format(c="starts_at"), e=TS.format(c="ends_at")),
    "users": """CASE
        WHEN user_id IS NULL OR trim(user_id) = '' THEN 'missing user_id'
        WHEN first_seen IS NOT NULL AND trim(first_seen) <> '' AND {t} IS NULL
            THEN 'first_seen ''' || first_seen || ''' is not a date'
        END""".format(t=TS.format(c="first_seen")),
    "item_properties": "CASE WHEN itemid IS NULL THEN 'missing itemid' END",
    "category_tree": "CASE WHEN categoryid IS NULL THEN 'missing categoryid' END",
}

# items and users: merged (no PRIMARY KEY index on them, see store migration 4):
# (table, key, source, columns, SET list)
MERGE = {
    "items": (
        "items",
        "item_id",
        """(SELECT trim(item_id) AS item_id, title, nullif(category, '') AS category, nullif(brand, '') AS brand,
                   nullif(seller_id, '') AS seller_id, try_cast(price AS DOUBLE) AS price, image_url,
                   {created} AS created_at, coalesce(try_cast(in_stock AS BOOLEAN), TRUE) AS in_stock,
                   TRUE AS from_catalog
            FROM good QUALIFY row_number() OVER (PARTITION BY trim(item_id) ORDER BY line DESC) = 1)""".format(
            created=TS.format(c="created_at")
        ),
        [*KINDS["items"], "from_catalog"],
        """title = coalesce(s.title, t.title), category = coalesce(s.category, t.category),
           brand = coalesce(s.brand, t.brand), seller_id = coalesce(s.seller_id, t.seller_id),
           price = coalesce(s.price, t.price), image_url = coalesce(s.image_url, t.image_url),
           created_at = coalesce(s.created_at, t.created_at), in_stock = s.in_stock, from_catalog = TRUE""",
    ),
    "users": (
        "users",
        "user_id",
        """(SELECT trim(user_id) AS user_id, {t} AS first_seen, region, device, segment FROM good
            QUALIFY row_number() OVER (PARTITION BY trim(user_id) ORDER BY line DESC) = 1)""".format(
            t=TS.format(c="first_seen")
        ),
        KINDS["users"],
        """first_seen = coalesce(s.first_seen, t.first_seen), region = coalesce(s.region, t.region),
           device = coalesce(s.device, t.device), segment = coalesce(s.segment, t.segment)""",
    ),
    # RetailRocket: the latest categoryid / available per item
    "item_properties": (
        "items",
        "item_id",
        """(SELECT itemid AS item_id,
                   max_by(CASE WHEN property = 'categoryid' THEN value END,
                          CASE WHEN property = 'categoryid' THEN try_cast(timestamp AS BIGINT) END) AS category,
                   max_by(CASE WHEN property = 'available' THEN value = '1' END,
                          CASE WHEN property = 'available' THEN try_cast(timestamp AS BIGINT) END) AS in_stock
            FROM good WHERE property IN ('categoryid', 'available') GROUP BY itemid)""",
        ["item_id", "category", "in_stock"],
        "category = coalesce(s.category, t.category), in_stock = coalesce(s.in_stock, t.in_stock)",
    ),
}

UPSERT = {
    "sellers": """INSERT INTO sellers SELECT trim(seller_id), name, lower(tier), {t} FROM good
        QUALIFY row_number() OVER (PARTITION BY trim(seller_id) ORDER BY line DESC) = 1
        ON CONFLICT (seller_id) DO UPDATE SET name = coalesce(excluded.name, sellers.name),
            tier = coalesce(excluded.tier, sellers.tier),
            onboarded_at = coalesce(excluded.onboarded_at, sellers.onboarded_at)""".format(
        t=TS.format(c="onboarded_at")
    ),
    "promotions": """INSERT INTO promotions
        SELECT coalesce(nullif(promotion_id, ''), md5(concat_ws('|', item_id, category, starts_at))),
               nullif(trim(item_id), ''), nullif(category, ''),
               CASE WHEN try_cast(discount AS DOUBLE) > 1 THEN try_cast(discount AS DOUBLE) / 100
                    ELSE try_cast(discount AS DOUBLE) END, {s}, {e}
        FROM good QUALIFY row_number() OVER (
            PARTITION BY coalesce(nullif(promotion_id, ''), md5(concat_ws('|', item_id, category, starts_at)))
            ORDER BY line DESC) = 1
        ON CONFLICT (promotion_id) DO UPDATE SET item_id = excluded.item_id, category = excluded.category,
            discount = excluded.discount, starts_at = excluded.starts_at, ends_at = excluded.ends_at""".format(
        s=TS.format(c="starts_at"), e=TS.format(c="ends_at")
    ),
    # RetailRocket: replace category ids by their path of ids from the root (a.b.c)
    "category_tree": """UPDATE items SET category = p.path FROM (
        WITH RECURSIVE walk(categoryid, node, path, depth) AS (
            SELECT categoryid, parentid, categoryid, 0 FROM good
            UNION ALL
            SELECT w.categoryid, g.parentid, g.categoryid || '.' || w.path, w.depth + 1
            FROM walk w JOIN good g ON g.categoryid = w.node WHERE w.depth < 20)
        SELECT categoryid, arg_max(path, depth) AS path FROM walk GROUP BY categoryid) p
        WHERE items.category = p.categoryid""",
}


def ingest_catalog(path, kind: str | None = None, *, db_path=None) -> IngestResult:
    """Upsert one catalog file; bad rows go to ``rejects`` with their line and reason."""
    path = Path(path)
    started = time.perf_counter()
    _check_file(path)
    digest = sha256_of(path)
    with store.transaction(db_path) as con:
        cols, file_type = _columns(con, path)
        kind = kind or detect_kind(cols, path)
        if kind not in KINDS:
            raise InputError(f"unknown catalog kind '{kind}'", file=str(path), fix="use " + ", ".join(KINDS))
        key = KINDS[kind][0]
        if kind != "promotions" and key not in cols:
            raise InputError(
                f"missing required column {key} for {kind}", file=str(path), line=1, fix=f"add a {key} column"
            )
        try:
            skipped = _stage(con, path, kind, file_type)
        except Exception as exc:
            raise InputError(f"could not be read as a {kind} file: {exc}", file=str(path)) from exc
        ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE checked AS SELECT *, coalesce(nf_reason, {REASONS[kind]}) AS reason "
            "FROM cat"
        )
        con.execute("CREATE OR REPLACE TEMP TABLE good AS SELECT * FROM checked WHERE reason IS NULL")
        if con.execute("SELECT count(*) FROM checked").fetchall()[0][0] + skipped == 0:
            raise InputError(
                "has a header but no rows", file=str(path), fix="export the catalog again with its rows"
            )
        raw_cols = " || ',' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '')" for c in KINDS[kind])
        con.execute(
            f"""INSERT INTO rejects SELECT ?, line, coalesce(raw, {raw_cols}), reason FROM checked
                        WHERE reason IS NOT NULL""",
            [ingest_id],
        )
        con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM line_map", [ingest_id])
        rows_read = con.execute("SELECT count(*) FROM checked").fetchall()[0][0] + skipped
        rejected = con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?", [ingest_id]).fetchall()[0][
            0
        ]
        if kind in MERGE:
            merge(con, *MERGE[kind])
        else:
            con.execute(UPSERT[kind])
        loaded = rows_read - rejected
        seconds = time.perf_counter() - started
        con.execute(
            """INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, now() - to_microseconds(?), now(), 'done', NULL)""",
            [ingest_id, str(path), digest, file_type, kind, rows_read, loaded, rejected, int(seconds * 1e6)],
        )
        for table in ("cat", "checked", "good", "line_map", REJECTS_TABLE, REJECTS_SCAN):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return IngestResult(ingest_id, str(path), file_type, rows_read, loaded, rejected, 0, seconds, kind=kind)


__all__ = ["ingest_catalog", "detect_kind", "KINDS"]
