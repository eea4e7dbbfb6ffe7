"""The data-quality report: what was removed, what is missing, what looks wrong."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from core import store


@dataclass
class QualityReport:
    events: int
    duplicates_removed: int
    rejected: int
    missing: pl.DataFrame  # column, missing, share
    rejects_by_reason: pl.DataFrame  # reason, rows
    bots: pl.DataFrame  # user_id, peak events per minute
    price_outliers: pl.DataFrame
    dwell_outliers: int
    future_events: int
    unknown_items: int  # events whose item has no catalog attributes
    bot_events_per_minute: int

    def to_text(self) -> str:
        lines = [
            f"events stored: {self.events:,}",
            f"duplicates removed at ingest: {self.duplicates_removed:,}",
            f"rows rejected at ingest: {self.rejected:,}",
        ]
        if not self.rejects_by_reason.is_empty():
            lines.append("rejects by reason:")
            lines += [f"  {r['rows']:>8,}  {r['reason']}" for r in self.rejects_by_reason.head(15).to_dicts()]
        lines.append("missing values per column:")
        lines += [
            f"  {r['column']:<12} {r['missing']:>10,}  ({r['share']:.1%})" for r in self.missing.to_dicts()
        ]
        lines.append(
            f"suspected bots (> {self.bot_events_per_minute} events in a minute): {len(self.bots):,}"
        )
        lines += [
            f"  {r['user_id']}: {r['peak_per_minute']} events/min" for r in self.bots.head(10).to_dicts()
        ]
        lines.append(f"price outliers (beyond 3 IQR of their category): {len(self.price_outliers):,}")
        lines.append(f"dwell times over 1 hour: {self.dwell_outliers:,}")
        lines.append(f"events in the future: {self.future_events:,}")
        lines.append(f"events on items missing from the catalog: {self.unknown_items:,}")
        return "\n".join(lines)


MISSING_COLUMNS = ["session_id", "dwell_ms", "position", "page", "price"]


def quality_report(
    db_path=None, bot_events_per_minute: int = 30, now: datetime | None = None
) -> QualityReport:
    now = now or datetime.now()
    with store.connect(db_path) as con:
        # one scan of events for every count
        events, *counts, dwell_outliers, future = con.execute(
            "SELECT count(*), "
            + ", ".join(f"count(*) - count({c})" for c in MISSING_COLUMNS)
            + ", count(*) FILTER (WHERE dwell_ms > 3600000), count(*) FILTER (WHERE ts > ?) FROM events",
            [now],
        ).fetchall()[0]
        dups, rejected = con.execute(
            "SELECT coalesce(sum(duplicates), 0), coalesce(sum(rejected), 0) FROM ingests"
        ).fetchall()[0]
        missing = pl.DataFrame(
            {
                "column": MISSING_COLUMNS,
                "missing": list(counts),
                "share": [c / max(events, 1) for c in counts],
            }
        )
        by_reason = con.sql(
            """SELECT regexp_replace(reason, '''[^'']*''', '…', 'g') AS reason, count(*) AS rows
               FROM rejects GROUP BY 1 ORDER BY rows DESC"""
        ).pl()
        bots = con.sql(
            """SELECT user_id, max(n) AS peak_per_minute FROM (
                   SELECT user_id, date_trunc('minute', ts) AS m, count(*) AS n FROM events GROUP BY ALL)
               WHERE n > ? GROUP BY user_id ORDER BY peak_per_minute DESC""",
            params=[bot_events_per_minute],
        ).pl()
        price_outliers = con.sql(
            """WITH p AS (SELECT item_id, split_part(coalesce(category, ''), '.', 1) AS top, price FROM items
                          WHERE price IS NOT NULL),
                    q AS (SELECT top, quantile_cont(price, 0.25) AS q1, quantile_cont(price, 0.75) AS q3
                          FROM p GROUP BY top)
               SELECT p.item_id, p.top AS category, p.price FROM p JOIN q USING (top)
               WHERE p.price > q.q3 + 3 * (q.q3 - q.q1) OR p.price < q.q1 - 3 * (q.q3 - q.q1)
               ORDER BY p.price DESC"""
        ).pl()
        unknown = con.execute(
            """SELECT count(*) FROM events e JOIN items i USING (item_id)
               WHERE NOT i.from_catalog AND i.title IS NULL AND i.category IS NULL"""
        ).fetchall()[0][0]
    return QualityReport(
        events,
        int(dups),
        int(rejected),
        missing,
        by_reason,
        bots,
        price_outliers,
        dwell_outliers,
        future,
        unknown,
        bot_events_per_minute,
    )
