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

from core import store
from core.config import settings
from core.errors import NotFoundError
from core.ranking.homepage import ShopContext, shop_context, user_steps
from models.infer import pick_device


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


def _row(ctx: ShopContext, title: str, idx: np.ndarray, scores: np.ndarray, scored: int, ms: float) -> Row:
    frame = ctx.attrs[(idx - 1).tolist()].with_columns(pl.Series("score", scores.astype(float)))
    return Row(title, frame, scored, pick_device(settings().device).type, ms)


def _user_scores(ctx: ShopContext, user_id: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(scores (N+1,), history dense ids, ms) for one user; the fallback scores for an unknown one."""
    steps = user_steps(ctx, user_id)
    model = ctx.active.model
    max_len = model.max_len
    t0 = time.perf_counter()
    if len(steps):
        scores = (
            model.score(steps.histories([0], max_len=max_len).to(pick_device(settings().device)))[0]
            .float()
            .cpu()
            .numpy()
        )
        history = steps.items[0]
    else:
        scores = np.zeros(ctx.active.catalog.n_items + 1)
        history = np.zeros(0, dtype=np.int64)
    return scores, history, (time.perf_counter() - t0) * 1000.0


def _top(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    s = np.where(allowed, scores, -np.inf)
    s[0] = -np.inf
    n = min(k, int(np.isfinite(s).sum()))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-s, n - 1)[:n]
    return top[np.argsort(-s[top], kind="stable")]


def similar_items(item_id: str, k: int = 12, db_path=None) -> Row:
    """What a product page would show: nearest items by the model's item embeddings (cosine)."""
    ctx = shop_context(db_path)
    i = ctx.active.catalog.vocab.index.get(str(item_id))
    if not i:
        raise NotFoundError(f"item '{item_id}' is not in the catalog")
    t0 = time.perf_counter()
    emb, norm = ctx.embeddings, ctx.unit_embeddings
    sims = norm @ norm[i]
    allowed = ctx.in_stock.copy()
    allowed[i] = False
    top = _top(sims, allowed, k)
    ms = (time.perf_counter() - t0) * 1000.0
    title = ctx.attrs["title"][i - 1] or item_id
    return _row(ctx, f"Similar to {title}", top, sims[top], len(emb) - 1, ms)


def because_you_viewed(user_id: str, k: int = 12, db_path=None) -> Row | None:
    """Item-to-item for the user's latest viewed item; None without history."""
    ctx = shop_context(db_path)
    steps = user_steps(ctx, user_id)
    if not len(steps):
        return None
    latest = ctx.active.catalog.vocab.decode([steps.items[0][-1]])[0]
    row = similar_items(latest, k=k, db_path=db_path)
    row.title = f"Because you viewed {ctx.attrs['title'][int(steps.items[0][-1]) - 1] or latest}"
    return row


def trending_in_top_category(user_id: str, k: int = 12, days: int = 7, db_path=None) -> Row | None:
    """Trending (most events in the last ``days``) in the user's most frequent top-level category,
    ordered for this user by the model."""
    ctx = shop_context(db_path)
    scores, history, ms = _user_scores(ctx, user_id)
    cats = ctx.attrs["category"].fill_null("")
    if len(history):
        tops = [cats[int(i) - 1].split(".")[0] for i in history if cats[int(i) - 1]]
        top_cat = max(sorted(set(tops)), key=tops.count) if tops else ""  # ties: the first by name, every run
    else:
        top_cat = ""
    if not top_cat:
        return None
    trending = store.query(
        """SELECT e.item_id, count(*) AS n FROM events e JOIN items i USING (item_id)
           WHERE e.ts >= ? AND (i.category = ? OR i.category LIKE ?)
           GROUP BY e.item_id ORDER BY n DESC, e.item_id LIMIT 200""",
        [ctx.now - timedelta(days=days), top_cat, top_cat + ".%"],
        db_path=db_path,
    )
    idx = ctx.active.catalog.vocab.encode(trending["item_id"].to_list())
    allowed = np.zeros(len(scores), dtype=bool)
    allowed[idx[idx > 0]] = True
    allowed &= ctx.in_stock
    allowed[history] = False
    top = _top(scores, allowed, k)
    return _row(ctx, f"Trending in {top_cat}", top, scores[top], len(scores) - 1, ms)


def deals_for_you(user_id: str, k: int = 12, db_path=None) -> Row:
    """Items under an active promotion, ranked by the model for this user."""
    ctx = shop_context(db_path)
    scores, history, ms = _user_scores(ctx, user_id)
    allowed = np.concatenate([[False], ctx.attrs["promoted"].to_numpy().astype(bool)]) & ctx.in_stock
    allowed[history] = False
    top = _top(scores, allowed, k)
    return _row(ctx, "Deals for you", top, scores[top], len(scores) - 1, ms)


def personalized_search(user_id: str, query: str, k: int = 12, db_path=None) -> Row:
    """Keyword search over titles (every word must match), re-ranked by the model for this user."""
    ctx = shop_context(db_path)
    words = [w for w in query.lower().split() if w]
    titles = ctx.attrs["title"].fill_null("").str.to_lowercase()
    match = pl.Series([True] * len(titles))
    for w in words:
        match = match & titles.str.contains(w, literal=True)
    scores, _, ms = _user_scores(ctx, user_id)
    allowed = np.concatenate([[False], match.to_numpy().astype(bool)]) & ctx.in_stock
    top = _top(scores, allowed, k)
    return _row(ctx, f"Search: “{query}” — personalized", top, scores[top], len(scores) - 1, ms)


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
