"""Features as SQL over the store, returned as polars: sessions, dwell, click position, browse paths,
funnels, user and item statistics, and the overview numbers."""

from __future__ import annotations

from core import store

SESSION_GAP_MIN = 30
DWELL_CAP_MS = 30 * 60 * 1000

# Sessions: the given session id, else a new session after 30 minutes without an event
SESSIONIZED = f"""
    SELECT *, coalesce(session_id, user_id || '#' || CAST(sum(new_session) OVER (
               PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS VARCHAR)) AS session
    FROM (SELECT *, CASE WHEN lag(ts) OVER (PARTITION BY user_id ORDER BY ts) IS NULL
                          OR ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts)
                             > INTERVAL {SESSION_GAP_MIN} MINUTE
                         THEN 1 ELSE 0 END AS new_session
          FROM events WHERE event_type <> 'review')
"""


def overview_stats(db_path=None) -> dict:
    with store.connect(db_path) as con:
        row = (
            con.execute(
                """SELECT count(*), count(DISTINCT user_id), min(ts), max(ts)
                   FROM events"""
            ).fetchall()[0]
            + con.execute(  # sessions as in sessions(): the given id, else a 30-minute gap
                f"SELECT count(*) FROM (SELECT DISTINCT user_id, session FROM ({SESSIONIZED}))"
            ).fetchall()[0]
        )
        n_items = con.execute("SELECT count(*) FROM items").fetchall()[0][0]
        by_type = con.sql(
            "SELECT event_type, count(*) AS events FROM events GROUP BY 1 ORDER BY events DESC, event_type"
        ).pl()
    events, users, first, last, sessions = row
    days = (last - first).days + 1 if first and last else 0
    return {
        "events": events,
        "users": users,
        "items": n_items,
        "sessions": sessions,
        "first_event": first,
        "last_event": last,
        "days": days,
        "by_type": by_type,
    }


def sessions(db_path=None):
    return store.query(
        f"""SELECT user_id, session, min(ts) AS started, max(ts) AS ended, count(*) AS events,
                   count(DISTINCT item_id) AS items, bool_or(event_type = 'purchase') AS purchased
            FROM ({SESSIONIZED}) GROUP BY user_id, session ORDER BY started""",
        db_path=db_path,
    )


def dwell_times(cap_ms: int = DWELL_CAP_MS, db_path=None):
    """Time to the next event in the same session (the logged dwell_ms when present), capped."""
    return store.query(
        f"""SELECT user_id, session, item_id, event_type, ts, least(raw_ms, ?) AS dwell_ms
            FROM (SELECT user_id, session, item_id, event_type, ts,
                         coalesce(dwell_ms,
                                  CAST(epoch_ms(lead(ts) OVER w) - epoch_ms(ts) AS BIGINT)) AS raw_ms
                  FROM ({SESSIONIZED})
                  WINDOW w AS (PARTITION BY user_id, session ORDER BY ts))
            WHERE raw_ms IS NOT NULL
            ORDER BY user_id, ts""",
        [cap_ms],
        db_path=db_path,
    )


def click_positions(db_path=None):
    return store.query(
        """SELECT position, count(*) FILTER (WHERE event_type = 'click') AS clicks,
                  count(*) FILTER (WHERE event_type = 'view') AS views,
                  round(count(*) FILTER (WHERE event_type = 'click')
                        / greatest(count(*) FILTER (WHERE event_type = 'view'), 1), 4) AS click_rate
           FROM events WHERE position IS NOT NULL GROUP BY position ORDER BY position""",
        db_path=db_path,
    )


def browse_paths(level: str = "item", top: int = 50, db_path=None):
    """The most frequent transitions from one step to the next within a session."""
    key = "e.item_id" if level == "item" else "coalesce(i.category, 'unknown')"
    return store.query(
        f"""WITH s AS (SELECT e.user_id, e.session, e.ts, {key} AS node
                       FROM ({SESSIONIZED}) e LEFT JOIN items i USING (item_id)
                       WHERE e.event_type IN ('view', 'click')),
                 t AS (SELECT node AS from_node,
                              lead(node) OVER (PARTITION BY user_id, session ORDER BY ts, node) AS to_node
                       FROM s)
            SELECT from_node, to_node, count(*) AS transitions FROM t
            WHERE to_node IS NOT NULL AND to_node <> from_node
            GROUP BY ALL ORDER BY transitions DESC, from_node, to_node LIMIT ?""",
        [top],
        db_path=db_path,
    )


FUNNEL_STEPS = ["view", "click", "add_to_cart", "purchase"]


def funnel(by: str | None = None, db_path=None):
    """Events per funnel step (and conversion from views); ``by='category'`` per top-level category."""
    if by == "category":
        return store.query(
            """SELECT split_part(coalesce(i.category, 'unknown'), '.', 1) AS category,
                      count(*) FILTER (WHERE event_type = 'view') AS views,
                      count(*) FILTER (WHERE event_type = 'click') AS clicks,
                      count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
                      count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
                      round(count(*) FILTER (WHERE event_type = 'purchase')
                            / greatest(count(*) FILTER (WHERE event_type = 'view'), 1), 4) AS view_to_purchase
               FROM events e LEFT JOIN items i USING (item_id) GROUP BY 1 ORDER BY views DESC, category""",
            db_path=db_path,
        )
    frame = store.query(
        """SELECT event_type AS step, count(*) AS events FROM events
           WHERE event_type IN ('view', 'click', 'add_to_cart', 'purchase') GROUP BY 1""",
        db_path=db_path,
    )
    counts = dict(zip(frame["step"].to_list(), frame["events"].to_list()))
    import polars as pl

    views = counts.get("view", 0) or 1
    return pl.DataFrame(
        {
            "step": FUNNEL_STEPS,
            "events": [counts.get(s, 0) for s in FUNNEL_STEPS],
            "share_of_views": [counts.get(s, 0) / views for s in FUNNEL_STEPS],
        }
    )


def user_stats(db_path=None):
    return store.query(
        """SELECT user_id, count(*) AS events, count(DISTINCT item_id) AS items,
                  count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
                  min(ts) AS first_event, max(ts) AS last_event,
                  date_diff('day', max(ts), (SELECT max(ts) FROM events)) AS days_since_last
           FROM events GROUP BY user_id ORDER BY events DESC, user_id""",
        db_path=db_path,
    )


def item_stats(db_path=None):
    return store.query(
        """SELECT e.item_id, any_value(i.title) AS title, any_value(i.category) AS category,
                  count(*) AS events,
                  count(DISTINCT e.user_id) AS users,
                  count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
                  max(e.ts) AS last_event,
                  date_diff('day', max(e.ts), (SELECT max(ts) FROM events)) AS days_since_last,
                  rank() OVER (ORDER BY count(*) DESC) AS popularity_rank
           FROM events e LEFT JOIN items i USING (item_id) GROUP BY e.item_id
           ORDER BY events DESC, e.item_id""",
        db_path=db_path,
    )
