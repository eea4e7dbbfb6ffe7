"""The storefront's other rows and applications, all scored by the active model.

Rows per interest ("Because you viewed keyboards", up to three: ``core.ranking.interests``), "Trending
in", "Deals for you", similar items (a product page) and a personalized keyword search. Each row says which device scored it and how long it took.

Every function ranks from a shop snapshot (``ctx``: the store's by default, or one built from a release
artifact by the storefront API) and never reads the database when given one and a rule set. ``scored``
passes one shopper's scores (``user_scores``) to several rows, so a page of rows costs one forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from core import category_paths, store
from core.errors import NotFoundError
from core.ranking.interests import Interest, recent_interests
from core.ranking.pipeline import rank_list
from core.ranking.reasons import Reason
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import RuleSet
from core.ranking.shop import ShopContext, shop_context, user_steps
from core.ranking.state import Candidates, UserContext


@dataclass
class UserScores:
    """One shopper's model scores, shared by the rows of one page."""

    scores: np.ndarray  # (N+1,)
    history: np.ndarray  # the shopper's steps, dense ids, time order
    ms: float


@dataclass
class Row:
    """A row of a page: its items (dense ids) in display order, their scores and the rules' reasons.
    ``items`` (attributes + score) is built on first use: the storefront API reads ``dense`` instead."""

    title: str
    dense: np.ndarray  # (k,) int64 dense ids, display order
    scores: np.ndarray  # (k,) float: the model's score (the similarity for similar items)
    attrs: pl.DataFrame = field(repr=False)  # the snapshot's item attributes (row i = item i+1)
    scored: int
    device: str
    ms: float
    reasons: list[list[Reason]] = field(default_factory=list)  # per item, in display order (the rules')

    @cached_property
    def items(self) -> pl.DataFrame:
        """The items' attributes and score, in display order."""
        return self.attrs[(self.dense - 1).tolist()].with_columns(pl.Series("score", self.scores))

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
) -> tuple[np.ndarray, list[list[Reason]]]:
    """Dense ids of the best ``k`` allowed items by ``scores`` (N+1,) under the rule set's exclusions and
    scores — the same stages the homepage runs first (``core.ranking.pipeline.rank_list``); the saved rule
    set when ``rule_set`` is None; with each item's reasons."""
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
    index = ctx.active.catalog.vocab.index  # c.item_ids decode idx: an item's dense id is its idx entry
    top = np.array([index[s.item_id] for s in listed.slots], dtype=np.int64)
    return top, [s.reasons for s in listed.slots]


def _row(
    ctx: ShopContext, title: str, ranked: tuple[np.ndarray, list], scores: np.ndarray, scored: int, ms: float
) -> Row:
    idx, reasons = ranked
    device = ctx.active.model.device.type
    return Row(title, idx, scores[idx].astype(float), ctx.attrs, scored, device, ms, reasons)


def user_scores(ctx: ShopContext, user_id: str) -> UserScores:
    """One shopper's scores (N+1,), history (dense ids) and ms; zeros for a shopper without history."""
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
    return UserScores(scores, history, (time.perf_counter() - t0) * 1000.0)


def similar_items(
    item_id: str,
    k: int = 12,
    db_path=None,
    rule_set: RuleSet | None = None,
    user_id: str | None = None,
    ctx: ShopContext | None = None,
) -> Row:
    """What a product page would show: nearest items by the model's item embeddings (cosine), under the
    rule set (a blocked item is never similar; rules scoped to ``user_id`` apply to that shopper)."""
    ctx = ctx or shop_context(db_path)
    i = ctx.active.catalog.vocab.index.get(str(item_id))
    if not i:
        raise NotFoundError(f"item '{item_id}' is not in the catalog")
    t0 = time.perf_counter()
    norm = ctx.unit_embeddings
    sims = (norm @ norm[i]).astype(np.float64)
    allowed = np.ones(len(sims), dtype=bool)
    allowed[i] = False
    ranked = _ranked(ctx, user_id, sims, allowed, k, rule_set, db_path)
    ms = (time.perf_counter() - t0) * 1000.0
    title = ctx.attrs["title"][i - 1] or item_id
    return _row(ctx, f"Similar to {title}", ranked, sims, len(sims) - 1, ms)


def interest_scores(ctx: ShopContext, interest: Interest, scores: np.ndarray, k: int) -> np.ndarray:
    """(N+1,) the shopper's scores conditioned on one interest: inside the interest's neighbourhood (its
    category; its top level when that holds too few items for a row) the model's score plus the cosine to
    the interest's items, each standardised over the neighbourhood; -inf outside it."""
    inside = category_paths.under_series(ctx.attrs["category"], [interest.path]).to_numpy()
    if inside.sum() < k + len(interest.items):
        top = category_paths.top_level(interest.path)
        inside = category_paths.under_series(ctx.attrs["category"], [top]).to_numpy()
    near = np.concatenate([[False], inside])  # (N+1,)
    centre = ctx.unit_embeddings[list(interest.items)].mean(axis=0)  # (D,)
    sims = (ctx.unit_embeddings @ centre).astype(np.float64)  # (N+1,)
    out = np.full(len(scores), -np.inf)
    out[near] = _standardised(scores[near]) + _standardised(sims[near])
    return out


def _standardised(x: np.ndarray) -> np.ndarray:
    x = np.where(np.isfinite(x), x, np.nan)
    centred = x - np.nanmean(x)
    return np.nan_to_num(centred / max(float(np.nanstd(x)), 1e-12), nan=-np.inf)


def rows_per_interest(
    user_id: str,
    k: int = 12,
    db_path=None,
    rule_set: RuleSet | None = None,
    ctx: ShopContext | None = None,
    scored: UserScores | None = None,
) -> list[Row]:
    """Up to ``MAX_INTERESTS`` rows, one per distinct recent interest of the shopper ("Because you viewed
    keyboards", heaviest interest first), each ranked by the model conditioned on that interest
    (``interest_scores``) under the rule set; the interest's own items are left out. No rows for a shopper
    without recent history."""
    ctx = ctx or shop_context(db_path)
    steps = user_steps(ctx, user_id)
    if not len(steps):
        return []
    found = recent_interests(
        steps.items[0], steps.event_types[0], steps.ts[0], ctx.categories, ctx.now.timestamp()
    )
    if not found:
        return []
    scored = scored or user_scores(ctx, user_id)
    rule_set = rule_set if rule_set is not None else load_rule_set(db_path=db_path)
    out = []
    for interest in found:
        t0 = time.perf_counter()
        conditioned = interest_scores(ctx, interest, scored.scores, k)
        allowed = np.isfinite(conditioned)
        allowed[list(interest.items)] = False
        ranked = _ranked(ctx, user_id, conditioned, allowed, k, rule_set, db_path)
        ms = scored.ms + (time.perf_counter() - t0) * 1000.0
        out.append(_row(ctx, interest.title, ranked, conditioned, len(conditioned) - 1, ms))
    return out


def _top_category(ctx: ShopContext, history: np.ndarray) -> str:
    """The shopper's most frequent top-level category (ties: the first by name, every run); '' without one."""
    cats, top_levels = ctx.table.column("category", ""), ctx.table.top_categories()  # cached per release
    tops = [top_levels[i - 1] for i in history.tolist() if cats[i - 1]]
    return max(sorted(set(tops)), key=tops.count) if tops else ""


def _trending_in(ctx: ShopContext, top_cat: str) -> np.ndarray:
    """Dense ids of the 200 most trending items under ``top_cat`` (0 for an item the catalog lacks): the
    same for every shopper of a snapshot, so kept in its ``derived`` cache (a visit's view shares it)."""
    key = ("trending_in", top_cat)
    hit = ctx.derived.get(key)
    if hit is not None:
        return hit
    idx = ctx.active.catalog.vocab.encode(ctx.trending["item_id"].to_list())
    known = idx > 0
    in_cat = np.zeros(len(idx), dtype=bool)
    in_cat[known] = category_paths.under_series(ctx.attrs["category"], [top_cat]).to_numpy()[idx[known] - 1]
    trending = ctx.trending.filter(pl.Series(in_cat)).sort(["events", "item_id"], descending=[True, False])
    hit = ctx.active.catalog.vocab.encode(trending["item_id"].head(200).to_list())
    ctx.derived[key] = hit  # one key per top-level category; a plain dict store is atomic under the GIL
    return hit


def trending_in_top_category(
    user_id: str,
    k: int = 12,
    db_path=None,
    rule_set: RuleSet | None = None,
    ctx: ShopContext | None = None,
    scored: UserScores | None = None,
) -> Row | None:
    """Trending (most events in the snapshot's last ``TRENDING_DAYS``) in the user's most frequent
    top-level category, ordered for this user by the model."""
    ctx = ctx or shop_context(db_path)
    scored = scored or user_scores(ctx, user_id)
    top_cat = _top_category(ctx, scored.history)
    if not top_cat:
        return None
    idx = _trending_in(ctx, top_cat)
    allowed = np.zeros(len(scored.scores), dtype=bool)
    allowed[idx[idx > 0]] = True
    allowed[scored.history] = False
    ranked = _ranked(ctx, user_id, scored.scores, allowed, k, rule_set, db_path)
    return _row(ctx, f"Trending in {top_cat}", ranked, scored.scores, len(scored.scores) - 1, scored.ms)


def deals_for_you(
    user_id: str,
    k: int = 12,
    db_path=None,
    rule_set: RuleSet | None = None,
    ctx: ShopContext | None = None,
    scored: UserScores | None = None,
) -> Row:
    """Items under an active promotion, ranked by the model for this user."""
    ctx = ctx or shop_context(db_path)
    scored = scored or user_scores(ctx, user_id)
    allowed = np.concatenate([[False], ctx.attrs["promoted"].to_numpy().astype(bool)])
    allowed[scored.history] = False
    ranked = _ranked(ctx, user_id, scored.scores, allowed, k, rule_set, db_path)
    return _row(ctx, "Deals for you", ranked, scored.scores, len(scored.scores) - 1, scored.ms)


def personalized_search(
    user_id: str,
    query: str,
    k: int = 12,
    db_path=None,
    rule_set: RuleSet | None = None,
    ctx: ShopContext | None = None,
) -> Row:
    """Keyword search over titles (every word must match), re-ranked by the model for this user."""
    ctx = ctx or shop_context(db_path)
    words = [w for w in query.lower().split() if w]
    titles = ctx.derived.get("titles_lower")
    if titles is None:  # the same for every query of a snapshot (a visit's view shares ``derived``)
        titles = ctx.derived["titles_lower"] = ctx.attrs["title"].fill_null("").str.to_lowercase()
    match = pl.Series([True] * len(titles))
    for w in words:
        match = match & titles.str.contains(w, literal=True)
    scored = user_scores(ctx, user_id)
    allowed = np.concatenate([[False], match.to_numpy().astype(bool)])
    ranked = _ranked(ctx, user_id, scored.scores, allowed, k, rule_set, db_path)
    title = f"Search: “{query}” — personalized"
    return _row(ctx, title, ranked, scored.scores, len(scored.scores) - 1, scored.ms)


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
