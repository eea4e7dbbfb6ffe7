"""The storefront's other rows and applications, all scored by the active model.

"Because you viewed", "Trending in", "Deals for you", similar items (a product page) and a
personalized keyword search. Each row says which device scored it and how long it took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from core import category_paths, store
from core.errors import NotFoundError
from core.ranking.pipeline import rank_list
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import RuleSet
from core.ranking.shop import ShopContext, shop_context, user_steps
from core.ranking.state import Candidates, UserContext


@dataclass
class Row:
    title: str
    items: pl.DataFrame  # item attributes + score, in display order
    scored: int
    device: str
    ms: float

    @property
    def note(self) -> str:
        return f"{self.scored:,} items scored on {self.device} in {self.ms:.1f} ms"


def _ranked(
    ctx: ShopContext,
    user_id: str | None,
    scores: np.ndarray,
    allowed: np.ndarray,
    k: int,
    rule_set: RuleSet | None,
    db_path=None,
) -> np.ndarray:
    """Dense ids of the best ``k`` allowed items by ``scores`` (N+1,) under the rule set's exclusions and
    scores — the same stages the homepage runs first (``core.ranking.pipeline.rank_list``); the saved rule
    set when ``rule_set`` is None."""
    rule_set = rule_set if rule_set is not None else load_rule_set(db_path=db_path)
    allowed = allowed & ctx.in_stock & np.isfinite(scores)
    allowed[0] = False
    idx = np.flatnonzero(allowed)
    attrs = ctx.users.get(str(user_id), {}) if user_id else {}
    user = UserContext(str(user_id or ""), attrs)
    c = Candidates(
        ctx.active.catalog.vocab.decode(idx),
        scores[idx].astype(np.float64),
        np.zeros(len(idx), dtype=np.int64),
        ctx.embeddings[idx],
        table=ctx.table,
        rows=idx - 1,
    )
    listed = rank_list(user, c, rule_set, k, ctx.now)
    position = {item: i for i, item in enumerate(c.item_ids)}
    return idx[[position[s.item_id] for s in listed.slots]].astype(np.int64)


def _row(ctx: ShopContext, title: str, idx: np.ndarray, scores: np.ndarray, scored: int, ms: float) -> Row:
    frame = ctx.attrs[(idx - 1).tolist()].with_columns(pl.Series("score", scores[idx].astype(float)))
    return Row(title, frame, scored, ctx.active.model.device.type, ms)


def _user_scores(ctx: ShopContext, user_id: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(scores (N+1,), history dense ids, ms) for one user; zeros for a shopper without history."""
    steps = user_steps(ctx, user_id)
    model = ctx.active.model
    t0 = time.perf_counter()
    if len(steps):
        histories = steps.histories([0], max_len=model.max_len).to(model.device)
        scores = model.score(histories)[0].float().cpu().numpy()
        history = steps.items[0]
    else:
        scores = np.zeros(ctx.active.catalog.n_items + 1)
        history = np.zeros(0, dtype=np.int64)
    return scores, history, (time.perf_counter() - t0) * 1000.0


def similar_items(
    item_id: str, k: int = 12, db_path=None, rule_set: RuleSet | None = None, user_id: str | None = None
) -> Row:
    """What a product page would show: nearest items by the model's item embeddings (cosine), under the
    rule set (a blocked item is never similar; rules scoped to ``user_id`` apply to that shopper)."""
    ctx = shop_context(db_path)
    i = ctx.active.catalog.vocab.index.get(str(item_id))
    if not i:
        raise NotFoundError(f"item '{item_id}' is not in the catalog")
    t0 = time.perf_counter()
    norm = ctx.unit_embeddings
    sims = (norm @ norm[i]).astype(np.float64)
    allowed = np.ones(len(sims), dtype=bool)
    allowed[i] = False
    top = _ranked(ctx, user_id, sims, allowed, k, rule_set, db_path)
    ms = (time.perf_counter() - t0) * 1000.0
    title = ctx.attrs["title"][i - 1] or item_id
    return _row(ctx, f"Similar to {title}", top, sims, len(sims) - 1, ms)


def because_you_viewed(
    user_id: str, k: int = 12, db_path=None, rule_set: RuleSet | None = None
) -> Row | None:
    """Item-to-item for the user's latest viewed item; None without history."""
    ctx = shop_context(db_path)
    steps = user_steps(ctx, user_id)
    if not len(steps):
        return None
    latest = int(steps.items[0][-1])
    row = similar_items(ctx.active.catalog.vocab.decode([latest])[0], k, db_path, rule_set, user_id)
    row.title = (
        f"Because you viewed {ctx.attrs['title'][latest - 1] or ctx.active.catalog.vocab.decode([latest])[0]}"
    )
    return row


def _top_category(ctx: ShopContext, history: np.ndarray) -> str:
    """The shopper's most frequent top-level category (ties: the first by name, every run); '' without one."""
    cats = ctx.attrs["category"].fill_null("")
    tops = [category_paths.top_level(cats[int(i) - 1]) for i in history if cats[int(i) - 1]]
    return max(sorted(set(tops)), key=tops.count) if tops else ""


def trending_in_top_category(
    user_id: str, k: int = 12, days: int = 7, db_path=None, rule_set: RuleSet | None = None
) -> Row | None:
    """Trending (most events in the last ``days``) in the user's most frequent top-level category,
    ordered for this user by the model."""
    ctx = shop_context(db_path)
    scores, history, ms = _user_scores(ctx, user_id)
    top_cat = _top_category(ctx, history)
    if not top_cat:
        return None
    trending = store.query(
        f"""SELECT e.item_id, count(*) AS n FROM events e JOIN items i USING (item_id)
           WHERE e.ts >= ? AND {category_paths.sql_under("i.category")}
           GROUP BY e.item_id ORDER BY n DESC, e.item_id LIMIT 200""",
        [ctx.now - timedelta(days=days), *category_paths.sql_params(top_cat)],
        db_path=db_path,
    )
    idx = ctx.active.catalog.vocab.encode(trending["item_id"].to_list())
    allowed = np.zeros(len(scores), dtype=bool)
    allowed[idx[idx > 0]] = True
    allowed[history] = False
    top = _ranked(ctx, user_id, scores, allowed, k, rule_set, db_path)
    return _row(ctx, f"Trending in {top_cat}", top, scores, len(scores) - 1, ms)


def deals_for_you(user_id: str, k: int = 12, db_path=None, rule_set: RuleSet | None = None) -> Row:
    """Items under an active promotion, ranked by the model for this user."""
    ctx = shop_context(db_path)
    scores, history, ms = _user_scores(ctx, user_id)
    allowed = np.concatenate([[False], ctx.attrs["promoted"].to_numpy().astype(bool)])
    allowed[history] = False
    top = _ranked(ctx, user_id, scores, allowed, k, rule_set, db_path)
    return _row(ctx, "Deals for you", top, scores, len(scores) - 1, ms)


def personalized_search(
    user_id: str, query: str, k: int = 12, db_path=None, rule_set: RuleSet | None = None
) -> Row:
    """Keyword search over titles (every word must match), re-ranked by the model for this user."""
    ctx = shop_context(db_path)
    words = [w for w in query.lower().split() if w]
    titles = ctx.attrs["title"].fill_null("").str.to_lowercase()
    match = pl.Series([True] * len(titles))
    for w in words:
        match = match & titles.str.contains(w, literal=True)
    scores, _, ms = _user_scores(ctx, user_id)
    allowed = np.concatenate([[False], match.to_numpy().astype(bool)])
    top = _ranked(ctx, user_id, scores, allowed, k, rule_set, db_path)
    return _row(ctx, f"Search: “{query}” — personalized", top, scores, len(scores) - 1, ms)


def search_users(fragment: str, limit: int = 20, db_path=None) -> list[str]:
    """User ids containing the typed fragment (an exact id first)."""
    frame = store.query(
        """SELECT user_id FROM users WHERE contains(lower(user_id), lower(?))
           ORDER BY (user_id = ?) DESC, length(user_id), user_id LIMIT ?""",
        [fragment, fragment, limit],
        db_path=db_path,
    )
    return frame["user_id"].to_list()


def resolve_user(fragment: str, db_path=None) -> tuple[str | None, list[str]]:
    """What the shopper search box means: (the shopper, when the fragment is an exact id or matches one
    id only, else None; every matching id)."""
    fragment = fragment.strip()
    matches = search_users(fragment, db_path=db_path)
    chosen = matches[0] if matches and (matches[0] == fragment or len(matches) == 1) else None
    return chosen, matches


def segments(db_path=None) -> list[str]:
    frame = store.query(
        "SELECT DISTINCT segment FROM users WHERE segment IS NOT NULL ORDER BY 1", db_path=db_path
    )
    return frame["segment"].to_list()


def random_user(segment: str | None = None, seed: int | None = None, db_path=None) -> str | None:
    """A random user with history, from a segment (or anyone)."""
    rng = np.random.default_rng(seed)
    frame = store.query(
        """SELECT user_id FROM users WHERE (? IS NULL OR segment = ?)
           AND user_id IN (SELECT DISTINCT user_id FROM events) ORDER BY user_id""",
        [segment, segment],
        db_path=db_path,
    )
    if frame.is_empty():
        return None
    return frame["user_id"][int(rng.integers(len(frame)))]
