"""The SQL of a catalog load: the reason a row is rejected, the key that makes two rows of one file
duplicates, and the upsert of each kind — built from our known column names only, and for an update only
from the columns the file has (a file of ``item_id,price`` changes prices, nothing else)."""

from __future__ import annotations

from core.data.readers import CONTROL, END_TS, FIRST_TS, MAX_ID, ts_general

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
PROMOTION_KEY = "coalesce(promotion_id, md5(concat_ws('|', item_id, category, starts_at)))"
KEYS = {  # two good rows of one file with the same key: the first is loaded, the others are duplicates
    "items": "item_id",
    "sellers": "seller_id",
    "promotions": PROMOTION_KEY,
    "users": "user_id",
    "item_properties": "timestamp, itemid, property",
    "category_tree": "categoryid",
}
IDS = {  # id columns of each kind: at most MAX_ID characters, no control characters
    "items": ["item_id", "seller_id"],
    "sellers": ["seller_id"],
    "promotions": ["promotion_id", "item_id"],
    "users": ["user_id"],
    "item_properties": ["itemid"],
    "category_tree": ["categoryid", "parentid"],
}


def ts(column: str) -> str:
    return ts_general(column)


def _date(column: str, required: bool = False) -> str:
    """WHEN clauses: ``column`` is not a date (or missing, if ``required``), or outside 1970–2100."""
    missing = f"{column} IS NULL OR " if required else f"{column} IS NOT NULL AND "
    value = f"coalesce({column}, '')" if required else column
    return f"""
        WHEN {missing}{ts(column)} IS NULL THEN '{column} ''' || {value} || ''' is not a date'
        WHEN {ts(column)} < TIMESTAMP '{FIRST_TS}' OR {ts(column)} >= TIMESTAMP '{END_TS}'
            THEN '{column} ''' || {column} || ''' is outside the years 1970–2100'"""


def _number(column: str) -> str:
    """WHEN clauses: ``column`` given but not a finite number."""
    return f"""
        WHEN {column} IS NOT NULL AND try_cast({column} AS DOUBLE) IS NULL
            THEN '{column} ''' || {column} || ''' is not a number'
        WHEN NOT isfinite(try_cast({column} AS DOUBLE))
            THEN '{column} ''' || {column} || ''' is not a finite number'"""


def _ids(kind: str) -> str:
    whens = []
    for c in IDS[kind]:
        whens.append(
            f"WHEN strlen({c}) > {MAX_ID} THEN '{c} is ' || length({c}) || ' characters long — ids have "
            f"at most {MAX_ID}'"
        )
        whens.append(
            f"WHEN regexp_matches({c}, {CONTROL}) THEN '{c} contains a control character (tab, NUL, "
            "line break…) — remove it'"
        )
    return "\n        ".join(whens)


REASONS = {
    "items": f"""CASE
        WHEN item_id IS NULL THEN 'missing item_id — every catalog row needs one'
        {_ids("items")}{_number("price")}
        WHEN try_cast(price AS DOUBLE) < 0 THEN 'negative price ' || price
        WHEN in_stock IS NOT NULL AND try_cast(in_stock AS BOOLEAN) IS NULL
            THEN 'in_stock ''' || in_stock || ''' is not true/false'{_date("created_at")}
        END""",
    "sellers": f"""CASE
        WHEN seller_id IS NULL THEN 'missing seller_id'
        {_ids("sellers")}{_date("onboarded_at")}
        END""",
    "promotions": f"""CASE
        WHEN item_id IS NULL AND category IS NULL THEN 'a promotion needs an item_id or a category'
        {_ids("promotions")}
        WHEN try_cast(discount AS DOUBLE) IS NULL THEN 'discount ''' || coalesce(discount, '') || ''' is not a number'
        WHEN NOT isfinite(try_cast(discount AS DOUBLE)) THEN 'discount ''' || discount || ''' is not a finite number'
        WHEN try_cast(discount AS DOUBLE) < 0 OR try_cast(discount AS DOUBLE) > 100
            THEN 'discount ' || discount || ' is outside 0–1 (or 0–100 %)'{_date("starts_at", True)}{_date("ends_at")}
        WHEN {ts("ends_at")} < {ts("starts_at")} THEN 'ends_at is before starts_at'
        END""",
    "users": f"""CASE
        WHEN user_id IS NULL THEN 'missing user_id'
        {_ids("users")}{_date("first_seen")}
        END""",
    "item_properties": f"CASE WHEN itemid IS NULL THEN 'missing itemid' {_ids('item_properties')} END",
    "category_tree": f"CASE WHEN categoryid IS NULL THEN 'missing categoryid' {_ids('category_tree')} END",
}

# the value of each column as stored, from the staged VARCHAR (NULL where the file has no value)
TYPED = {
    "price": "try_cast(price AS DOUBLE)",
    "in_stock": "try_cast(in_stock AS BOOLEAN)",
    "created_at": ts("created_at"),
    "first_seen": ts("first_seen"),
    "onboarded_at": ts("onboarded_at"),
    "tier": "lower(tier)",
    "discount": "CASE WHEN try_cast(discount AS DOUBLE) > 1 THEN try_cast(discount AS DOUBLE) / 100 "
    "ELSE try_cast(discount AS DOUBLE) END",
    "starts_at": ts("starts_at"),
    "ends_at": ts("ends_at"),
}


def typed(column: str) -> str:
    return f"{TYPED.get(column, column)} AS {column}"


def merge_args(kind: str, present: set[str]) -> tuple:
    """``ingest_support.merge`` arguments for items, users and RetailRocket item properties: (table, key,
    source, columns, SET list or None, insert expressions). Only ``present`` columns are updated."""
    if kind == "item_properties":
        source = """(SELECT itemid AS item_id,
                   max_by(CASE WHEN property = 'categoryid' THEN value END,
                          CASE WHEN property = 'categoryid' THEN try_cast(timestamp AS BIGINT) END) AS category,
                   max_by(CASE WHEN property = 'available' THEN value = '1' END,
                          CASE WHEN property = 'available' THEN try_cast(timestamp AS BIGINT) END) AS in_stock
            FROM good WHERE property IN ('categoryid', 'available') GROUP BY itemid)"""
        update = "category = coalesce(s.category, t.category), in_stock = coalesce(s.in_stock, t.in_stock)"
        return "items", "item_id", source, ["item_id", "category", "in_stock"], update, {}
    key = KINDS[kind][0]
    columns = [c for c in KINDS[kind] if c == key or c in present]
    source = f"(SELECT {', '.join(typed(c) for c in columns)}{', TRUE AS from_catalog' if kind == 'items' else ''} FROM good)"
    sets = [f"{c} = coalesce(s.{c}, t.{c})" for c in columns if c != key]
    if kind == "items":
        columns, sets = [*columns, "from_catalog"], [*sets, "from_catalog = TRUE"]
        return "items", key, source, columns, ", ".join(sets), {"in_stock": "coalesce(in_stock, TRUE)"}
    return kind, key, source, columns, ", ".join(sets) or None, {}


def upsert(kind: str, present: set[str]) -> str:
    """The upsert of sellers and promotions (which keep their PRIMARY KEY), and the category tree."""
    if kind == "category_tree":  # RetailRocket: category ids become their path of ids from the root (a.b.c)
        return """UPDATE items SET category = p.path FROM (
            WITH RECURSIVE walk(categoryid, node, path, depth) AS (
                SELECT categoryid, parentid, categoryid, 0 FROM good
                UNION ALL
                SELECT w.categoryid, g.parentid, g.categoryid || '.' || w.path, w.depth + 1
                FROM walk w JOIN good g ON g.categoryid = w.node WHERE w.depth < 20)
            SELECT categoryid, arg_max(path, depth) AS path FROM walk GROUP BY categoryid) p
            WHERE items.category = p.categoryid"""
    columns = KINDS[kind]
    values = [f"{PROMOTION_KEY} AS promotion_id" if c == "promotion_id" else typed(c) for c in columns]
    key = columns[0]
    sets = ", ".join(f"{c} = coalesce(excluded.{c}, {kind}.{c})" for c in columns[1:] if c in present)
    action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
    return f"""INSERT INTO {kind} ({", ".join(columns)}) SELECT {", ".join(values)} FROM good
        ON CONFLICT ({key}) {action}"""
