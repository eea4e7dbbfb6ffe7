"""The demo shop: a deterministic synthetic store with structure for a model to learn and bias for
an audit to find, written as files and loaded through the same ingest path as real logs.

What it has: a 3-level category tree with complementary leaves (phone → case → charger), brands per
top category, sellers (a few large ones own most of the catalog; many small, some newly onboarded),
log-normal prices per leaf, a latent item quality (clicks, carts, ratings), users with favourite
categories (skewed by region), price sensitivity and a device (session length), promotions (ended,
active, upcoming) that lift carts and cut the price, sessions that walk the funnel
view → click → cart → purchase (→ review) with position-biased clicks and log-normal dwell times,
power-law popularity, and the biases: small sellers' and new items are shown less and lower.

Same seed → the same frames and byte-identical files; time ends at ``END``, never the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core.config import settings
from core.data.demo_catalog import (  # noqa: F401  (TREE, _leaves: re-exported for callers)
    _END,
    COMPLEMENTS,
    DAY,
    END,
    TREE,
    _catalog,
    _leaves,
    _promotions,
    _us,
)
from core.release.roles import Account
from models.base import EVENT_NAMES, EVENT_TYPES

REGIONS, DEVICES = ["north", "south", "east", "west"], ["mobile", "desktop", "tablet"]
PAGES = ["home", "search", "category", "product"]
# the funnel's steps in the one vocabulary of event types (models.base): their codes also order a session
VIEW, CLICK, CART, REMOVE, BUY, REVIEW = (
    EVENT_TYPES[name] for name in ("view", "click", "add_to_cart", "remove_from_cart", "purchase", "review")
)
# Funnel knobs: clicks ≈ 35 % of views, carts ≈ 10 % of clicks, purchases ≈ 55 % of carts (≈ 2 % of views).
P_CLICK, P_CART, P_BUY, P_REMOVE, P_REVIEW = 0.57, 0.1, 0.55, 0.3, 0.3
# the next item in a session: from the complement of the last leaf, from a new leaf, else the same leaf
P_COMPLEMENT, P_FRESH = 0.45, 0.15
SESSION_STEPS = np.array([4.0, 7.0, 5.5])  # mean extra views per session by device: mobile, desktop, tablet


@dataclass
class DemoSummary:
    events: int
    users: int
    items: int
    sellers: int
    promotions: int
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"demo shop: {self.events:,} events, {self.users:,} users, {self.items:,} items, "
            f"{self.sellers} sellers, {self.promotions} promotions in {self.seconds:.1f} s"
        )


def _sampler(groups: np.ndarray, weights: np.ndarray, n_groups: int):
    """Draw a member of a group with probability ∝ weight, vectorised over many draws."""
    order = np.lexsort((np.arange(len(groups)), groups))
    g, w = groups[order], weights[order]
    total = np.bincount(g, w, minlength=n_groups)
    cum = np.cumsum(w) - np.repeat(
        np.concatenate([[0], np.cumsum(total)[:-1]]), np.bincount(g, minlength=n_groups)
    )
    key = g + cum / np.maximum(total[g], 1e-12)

    def draw(group: np.ndarray, rng) -> np.ndarray:
        u = group + rng.uniform(1e-9, 1 - 1e-9, len(group))
        idx = np.minimum(np.searchsorted(key, u), len(order) - 1)
        return order[idx]

    return draw


def _users(rng: np.random.Generator, n_users: int, n_days: int) -> dict:
    """Latent tastes (favourite top categories, skewed by region), price sensitivity, activity, device."""
    n_tops = len(TREE)
    start = _END - n_days * DAY
    is_new = rng.random(n_users) < 0.3  # first seen inside the window; the rest are returning
    first_seen = np.where(
        is_new,
        start + rng.uniform(0, n_days * 0.9, n_users) * DAY,
        start - rng.uniform(1, 365, n_users) * DAY,
    )
    region = rng.choice(len(REGIONS), n_users, p=[0.35, 0.25, 0.2, 0.2])
    alpha = np.full((len(REGIONS), n_tops), 0.3)
    alpha[
        np.arange(len(REGIONS))[:, None], rng.permuted(np.tile(np.arange(n_tops), (4, 1)), axis=1)[:, :2]
    ] += 0.6
    g = rng.gamma(alpha[region])
    taste = g / g.sum(1, keepdims=True)
    return dict(
        first_seen=first_seen,
        is_new=is_new,
        region=region,
        taste=taste,
        device=rng.choice(len(DEVICES), n_users, p=[0.6, 0.3, 0.1]),
        sensitivity=rng.uniform(0.0, 1.2, n_users),
        activity=rng.lognormal(0, 0.8, n_users),
    )


def _sessions(rng: np.random.Generator, n_days: int, cat: dict, u: dict) -> dict:
    """Sessions in bulk, then their items step by step (one vectorised step per position in a session)."""
    leaf, leaf_top, pop, paths = cat["leaf"], cat["leaf_top"], cat["pop"], cat["paths"]
    n_leaves, n_tops, n_users = len(paths), len(TREE), len(u["taste"])
    any_item, old_item = (
        _sampler(leaf, pop, n_leaves),
        _sampler(leaf, pop * np.where(cat["new"], 1e-6, 1), n_leaves),
    )
    leaf_of_top = _sampler(leaf_top, np.bincount(leaf, pop, minlength=n_leaves) + 1e-9, n_tops)
    leaf_index = {p.rsplit(".", 1)[1]: i for i, p in enumerate(paths)}
    complement = np.full(n_leaves, -1)
    for a, b in COMPLEMENTS.items():
        complement[leaf_index[a]] = leaf_index[b]
    start = _END - n_days * DAY
    n_sess = 1 + rng.poisson(4.5 * u["activity"] / u["activity"].mean())
    su = np.repeat(np.arange(n_users), n_sess)
    active_from = np.maximum(u["first_seen"][su], start)
    s_start = active_from + rng.random(len(su)) * (_END - 3600 - active_from)
    s_len = 1 + rng.poisson(SESSION_STEPS[u["device"][su]])
    # each session starts from the user's taste (80 %) or anywhere
    top = (rng.random(len(su))[:, None] > np.cumsum(u["taste"], axis=1)[su]).sum(1).clip(0, n_tops - 1)
    explore = rng.random(len(su)) < 0.2
    top[explore] = rng.integers(0, n_tops, explore.sum())

    def item_of_leaf(leaves: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        item = any_item(leaves, rng)
        early = s_start[sessions] < cat["created"][item]  # not listed yet: an older item of the leaf
        item[early] = old_item(leaves[early], rng)
        return item

    steps_item = [item_of_leaf(leaf_of_top(top, rng), np.arange(len(su)))]
    steps_sess, steps_k, steps_kind = [np.arange(len(su))], [np.zeros(len(su), int)], [np.zeros(len(su), int)]
    alive = np.arange(len(su))
    for k in range(1, int(s_len.max())):
        alive = alive[s_len[alive] > k]
        if not len(alive):
            break
        prev = steps_item[-1][np.searchsorted(steps_sess[-1], alive)]
        r = rng.random(len(alive))
        comp = complement[leaf[prev]]
        kind = np.where(r > 1 - P_FRESH, 3, np.where((r < P_COMPLEMENT) & (comp >= 0), 1, 2))
        next_leaf = np.where(kind == 1, comp, leaf[prev])  # complements follow each other: order matters
        fresh = kind == 3
        next_leaf[fresh] = leaf_of_top(top[alive[fresh]], rng)
        nxt = item_of_leaf(next_leaf, alive)
        again = nxt == prev  # the same item twice in a row: draw once more
        nxt[again] = item_of_leaf(next_leaf[again], alive[again])
        steps_item.append(nxt)
        steps_sess.append(alive)
        steps_k.append(np.full(len(alive), k))
        steps_kind.append(kind)
    item, sess = np.concatenate(steps_item), np.concatenate(steps_sess)
    ok = s_start[sess] >= cat["created"][item]  # a leaf with only newer items: drop the step
    step, kind = np.concatenate(steps_k)[ok], np.concatenate(steps_kind)[ok]
    return dict(item=item[ok], sess=sess[ok], step=step, kind=kind, su=su, s_start=s_start)


def _events(rng: np.random.Generator, s: dict, cat: dict, u: dict, promo: dict) -> pl.DataFrame:
    item, sess, kind = s["item"], s["sess"], s["kind"]
    user, quality, n = s["su"][sess], cat["quality"][item], len(item)
    position, page = _placement(rng, cat, item, kind)
    click = rng.random(n) < P_CLICK * position**-0.45 * np.exp(0.2 * quality)
    dwell = np.clip(rng.lognormal(9.3 + 0.7 * click, 0.9, n), 500, 600_000).astype(np.int64)  # ms
    gap = dwell / 1000 + rng.exponential(20, n)
    t = _clock(s, gap)
    on_promo = (t >= promo["start"][item]) & (t < promo["end"][item])
    price = np.round(cat["price"][item] * (1 - np.where(on_promo, promo["discount"][item], 0.0)), 2)
    funnel = _funnel(rng, cat, item, u["sensitivity"][user], click, on_promo)
    rating = np.clip(np.round(rng.normal(3.9 + 0.6 * quality, 0.8, n)), 1, 5)
    review_after = rng.uniform(1, 10, n) * DAY
    idx, code, ts = _steps(t, gap, funnel, review_after)
    ev = pl.DataFrame(
        {
            "ts": _us(ts),
            "u": user[idx],
            "i": item[idx],
            "code": code,
            "sess": sess[idx],
            "dwell_ms": np.where(code == VIEW, dwell[idx], -1),
            "position": np.where(np.isin(code, [VIEW, CLICK]), position[idx], -1),
            "page": page[idx],
            "price": price[idx],
            "rating": np.where(code == REVIEW, rating[idx], np.nan),
        }
    ).sort("u", "ts", "code", "i", maintain_order=True)
    return _event_columns(ev)


def _placement(rng: np.random.Generator, cat: dict, item: np.ndarray, kind: np.ndarray):
    """Where each step's item was shown: its slot (users scroll less and less; small sellers' and new items
    sit lower) and its page (the entry from home/search/category; complements from the product page's
    "goes with")."""
    n = len(item)
    position = 1 + np.floor(rng.exponential(5.0, n)).astype(int)
    position += cat["small"][item] * rng.integers(0, 6, n) + cat["new"][item] * rng.integers(0, 4, n)
    position = np.minimum(position, 24)
    page = np.select(
        [kind == 0, kind == 1, kind == 2],
        [
            rng.choice(4, n, p=[0.45, 0.25, 0.25, 0.05]),
            rng.choice([0, 3], n, p=[0.15, 0.85]),
            rng.choice([1, 2, 3], n, p=[0.3, 0.5, 0.2]),
        ],
        rng.choice([0, 1], n),
    )
    return position, page


def _clock(s: dict, gap: np.ndarray) -> np.ndarray:
    """Each step's time: its session's start plus the gaps of the steps before it in that session."""
    sess, step = s["sess"], s["step"]
    order = np.lexsort((step, sess))
    g = gap[order]
    before = np.cumsum(g) - g  # exclusive running sum over all sessions in order
    first = np.r_[True, sess[order][1:] != sess[order][:-1]]
    t = np.empty(len(gap))
    t[order] = s["s_start"][sess[order]] + before - before[first][np.cumsum(first) - 1]
    return t


def _funnel(rng, cat: dict, item, sensitivity, click, on_promo) -> dict[int, np.ndarray]:
    """Which clicked steps went on to the cart, a purchase, a removal and a review: a price above the
    median puts price-sensitive shoppers off, quality and a promotion draw them in."""
    n = len(item)
    rel_price = np.log(cat["price"][item] / np.median(cat["price"]))
    p_cart = P_CART * np.exp(-sensitivity * np.clip(rel_price, 0, None) + 0.3 * cat["quality"][item])
    cart = click & (rng.random(n) < p_cart * np.where(on_promo, 1.6, 1.0))
    buy = cart & (rng.random(n) < P_BUY)
    removed = cart & ~buy & (rng.random(n) < P_REMOVE)
    review = buy & (rng.random(n) < P_REVIEW)
    return {CLICK: click, CART: cart, REMOVE: removed, BUY: buy, REVIEW: review}


def _steps(t, gap, funnel: dict[int, np.ndarray], review_after):
    """One event per step and funnel stage: (step index, event code, time); a stage follows its view within
    the step's gap, a review days later. Events after the demo's end are left out."""
    idx, code, ts = [], [], []
    for c, mask, offset in (
        (VIEW, None, 0.0),
        (CLICK, funnel[CLICK], 0.3),
        (CART, funnel[CART], 0.6),
        (REMOVE, funnel[REMOVE], 0.8),
        (BUY, funnel[BUY], 0.9),
    ):
        i = np.arange(len(t)) if mask is None else np.flatnonzero(mask)
        idx.append(i), code.append(np.full(len(i), c)), ts.append(t[i] + offset * gap[i])
    i = np.flatnonzero(funnel[REVIEW])
    idx.append(i), code.append(np.full(len(i), REVIEW)), ts.append(t[i] + review_after[i])
    idx, code, ts = np.concatenate(idx), np.concatenate(code), np.concatenate(ts)
    keep = ts < _END
    return idx[keep], code[keep], ts[keep]


def _event_columns(ev: pl.DataFrame) -> pl.DataFrame:
    """The internal codes as the events file's columns (ids, event names, nulls where a field does not apply)."""
    return ev.select(
        "ts",
        pl.format("u{}", pl.col("u").cast(pl.Utf8).str.zfill(6)).alias("user_id"),
        pl.format("i{}", pl.col("i").cast(pl.Utf8).str.zfill(5)).alias("item_id"),
        pl.col("code").replace_strict(EVENT_NAMES, return_dtype=pl.Utf8).alias("event_type"),
        pl.format("S{}", pl.col("sess").cast(pl.Utf8).str.zfill(7)).alias("session_id"),
        pl.when(pl.col("dwell_ms") >= 0).then(pl.col("dwell_ms")).alias("dwell_ms"),
        pl.when(pl.col("position") > 0).then(pl.col("position").cast(pl.Int32)).alias("position"),
        pl.col("page").replace_strict(list(range(4)), PAGES, return_dtype=pl.Utf8).alias("page"),
        "price",
        pl.col("rating").fill_nan(None),
        pl.lit("demo").alias("source"),
    )


def generate_demo(
    users: int = 20000, items: int = 5000, days: int = 60, seed: int = 7
) -> dict[str, pl.DataFrame]:
    """The demo shop as frames: sellers, items, promotions, users, events (no files, no database)."""
    if min(users, items, days) < 1:
        raise ValueError("users, items and days must each be at least 1")
    rng = np.random.default_rng(seed)
    item_frame, seller_frame, cat = _catalog(rng, items)
    promo_frame, promo = _promotions(rng, items, cat)
    u = _users(rng, users, days)
    s = _sessions(rng, days, cat, u)
    events = _events(rng, s, cat, u, promo)
    n_sess = np.bincount(s["su"], minlength=users)
    vip = ~u["is_new"] & (
        n_sess >= np.quantile(n_sess[~u["is_new"]], 0.95) if (~u["is_new"]).any() else False
    )
    user_frame = pl.DataFrame(
        {
            "user_id": [f"u{i:06d}" for i in range(users)],
            "first_seen": _us(u["first_seen"]),
            "region": np.array(REGIONS)[u["region"]],
            "device": np.array(DEVICES)[u["device"]],
            "segment": np.where(u["is_new"], "new", np.where(vip, "vip", "returning")),
        }
    )
    return dict(
        sellers=seller_frame, items=item_frame, promotions=promo_frame, users=user_frame, events=events
    )


def write_demo_files(frames: dict[str, pl.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """One Parquet file per frame (``events.parquet``, ``items.parquet`` …); same frames, same bytes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.parquet" for name in frames}
    for name, frame in frames.items():
        frame.write_parquet(files[name], statistics=False)
    return files


def build_demo_shop(
    users: int = 20000,
    items: int = 5000,
    days: int = 60,
    seed: int = 7,
    *,
    actor: Account,
    out_dir: str | Path | None = None,
    db_path=None,
    progress: Callable[[float, str], None] | None = None,
) -> DemoSummary:
    """Generate the demo shop as Parquet files in ``out_dir`` (default ``<data_dir>/demo``) and load them
    through the ingest path (catalog first, then events), like any real export."""
    from core.data.ingest import ingest_catalog, ingest_events

    started = time.perf_counter()
    report = progress or (lambda f, m="": None)
    out = Path(out_dir) if out_dir else settings().data_dir / "demo"
    report(0.02, "generating the shop")
    frames = generate_demo(users, items, days, seed)
    report(0.35, "writing files")
    files = write_demo_files(frames, out)
    report(0.45, "loading the catalog")
    for name in ("sellers", "items", "promotions", "users"):
        ingest_catalog(files[name], name, actor=actor, db_path=db_path)
    report(0.55, "loading the events")
    result = ingest_events(
        files["events"],
        "native",
        actor=actor,
        db_path=db_path,
        source="demo",
        progress=lambda f, m="": report(0.55 + 0.45 * f, m),
    )
    return DemoSummary(
        result.loaded,
        users,
        items,
        len(frames["sellers"]),
        len(frames["promotions"]),
        time.perf_counter() - started,
        files,
    )
