"""The demo shop: a deterministic synthetic store with structure for a model to learn and bias for
an audit to find, written as files and loaded through the same ingest path as real logs.

What it has: a 3-level category tree with complementary leaves (phone → case → charger), brands,
sellers (a few large ones own most of the catalog; many small, some newly onboarded), log-normal
prices, users with favourite categories and price sensitivity, sessions that walk the funnel
view → click → cart → purchase with position-biased clicks and dwell times, reviews, promotions,
power-law popularity and less exposure for small sellers' and new items.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from core.config import settings

END = datetime(2026, 10, 31)
TREE = {
    "electronics": {
        "phones": ["smartphones", "phone_cases", "chargers"],
        "audio": ["headphones", "speakers"],
        "computers": ["laptops", "mice", "keyboards"],
    },
    "home": {
        "kitchen": ["cookware", "knives", "coffee_makers"],
        "furniture": ["desks", "chairs"],
        "decor": ["lamps", "rugs"],
    },
    "fashion": {"women": ["dresses", "handbags", "heels"], "men": ["shirts", "sneakers", "watches"]},
    "beauty": {
        "skincare": ["moisturizers", "serums"],
        "makeup": ["lipstick", "mascara"],
        "hair": ["shampoo", "hair_dryers"],
    },
    "sports": {
        "fitness": ["yoga_mats", "dumbbells"],
        "outdoor": ["tents", "backpacks"],
        "cycling": ["bikes", "helmets"],
    },
    "toys": {"kids": ["puzzles", "dolls"], "games": ["board_games", "card_games"]},
    "books": {"fiction": ["novels", "comics"], "learning": ["textbooks", "language_courses"]},
    "garden": {"tools": ["shovels", "hoses"], "plants": ["seeds", "plant_pots"]},
    "pets": {"dogs": ["dog_food", "leashes"], "cats": ["cat_food", "cat_litter"]},
    "grocery": {"drinks": ["coffee_beans", "tea"], "snacks": ["chips", "chocolate"]},
}
COMPLEMENTS = {
    "smartphones": "phone_cases",
    "phone_cases": "chargers",
    "laptops": "mice",
    "mice": "keyboards",
    "headphones": "speakers",
    "cookware": "knives",
    "coffee_makers": "coffee_beans",
    "desks": "chairs",
    "dresses": "handbags",
    "handbags": "heels",
    "shirts": "sneakers",
    "moisturizers": "serums",
    "lipstick": "mascara",
    "shampoo": "hair_dryers",
    "yoga_mats": "dumbbells",
    "tents": "backpacks",
    "bikes": "helmets",
    "board_games": "card_games",
    "novels": "comics",
    "shovels": "hoses",
    "seeds": "plant_pots",
    "dog_food": "leashes",
    "cat_food": "cat_litter",
    "chips": "chocolate",
}
BRAND_SYLLABLES = [
    "ac",
    "no",
    "vel",
    "tri",
    "zen",
    "lu",
    "ka",
    "mo",
    "ra",
    "fi",
    "stel",
    "or",
    "qu",
    "bel",
    "ix",
]
ADJECTIVES = ["Classic", "Pro", "Lite", "Max", "Eco", "Smart", "Ultra", "Mini", "Plus", "Prime"]
REGIONS, DEVICES = ["north", "south", "east", "west"], ["mobile", "desktop", "tablet"]
PAGES = ["home", "search", "category", "product"]


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


def _leaves() -> tuple[list[str], np.ndarray]:
    paths, tops = [], []
    for t, (top, mids) in enumerate(TREE.items()):
        for mid, leaves in mids.items():
            for leaf in leaves:
                paths.append(f"{top}.{mid}.{leaf}")
                tops.append(t)
    return paths, np.array(tops)


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names = set()
    while len(names) < n:
        k = rng.integers(2, 4)
        names.add("".join(rng.choice(BRAND_SYLLABLES, k)).capitalize())
    return sorted(names)


def _catalog(rng, n_items: int, n_days: int):
    paths, leaf_top = _leaves()
    n_leaves, n_tops = len(paths), len(TREE)
    leaf_weight = rng.dirichlet(np.ones(n_leaves) * 2.0)
    leaf = rng.choice(n_leaves, n_items, p=leaf_weight)
    brands = _brand_names(rng, n_tops * 6)
    brand = leaf_top[leaf] * 6 + rng.integers(0, 6, n_items)
    n_sellers = max(20, n_items // 50)
    n_large = max(3, n_sellers // 20)
    tier = np.where(np.arange(n_sellers) < n_large, "large", "small")
    onboarded = END.timestamp() - rng.uniform(60, 3 * 365, n_sellers) * 86400
    new_small = (tier == "small") & (rng.random(n_sellers) < 0.15)
    onboarded[new_small] = END.timestamp() - rng.uniform(1, 30, new_small.sum()) * 86400
    large_share = rng.random(n_items) < 0.65  # a few large sellers own most of the catalog
    seller = np.where(
        large_share, rng.integers(0, n_large, n_items), rng.integers(n_large, n_sellers, n_items)
    )
    mu = rng.uniform(2.3, 5.8, n_leaves)
    price = np.round(np.exp(rng.normal(mu[leaf], 0.45)), 2)
    created = END.timestamp() - rng.uniform(15, 365, n_items) * 86400
    fresh = rng.random(n_items) < 0.08
    created[fresh] = END.timestamp() - rng.uniform(0, 14, fresh.sum()) * 86400
    created[new_small[seller]] = np.maximum(created[new_small[seller]], onboarded[seller[new_small[seller]]])
    # exposure bias: popularity is a power law, damped for small sellers and new items
    pop = (1.0 + rng.permutation(n_items)) ** -1.05
    pop *= np.where(tier[seller] == "small", 0.55, 1.0) * np.where(
        created > END.timestamp() - 14 * 86400, 0.5, 1
    )
    names = [p.split(".")[-1].replace("_", " ").title() for p in paths]
    titles = [
        f"{brands[b]} {ADJECTIVES[i % 10]} {names[lf].rstrip('s') if names[lf].endswith('s') else names[lf]}"
        f" {chr(65 + i % 26)}{i % 97}"
        for i, (b, lf) in enumerate(zip(brand, leaf))
    ]
    items = pl.DataFrame(
        {
            "item_id": [f"i{i:05d}" for i in range(n_items)],
            "title": titles,
            "category": [paths[lf] for lf in leaf],
            "brand": [brands[b] for b in brand],
            "seller_id": [f"s{s:03d}" for s in seller],
            "price": price,
            "image_url": [""] * n_items,
            "in_stock": rng.random(n_items) > 0.04,
            "created_at": (created * 1e6).astype("datetime64[us]"),
        }
    )
    sellers = pl.DataFrame(
        {
            "seller_id": [f"s{s:03d}" for s in range(n_sellers)],
            "name": [f"{_brand_names(np.random.default_rng(s), 1)[0]} Store {s}" for s in range(n_sellers)],
            "tier": tier,
            "onboarded_at": (onboarded * 1e6).astype("datetime64[us]"),
        }
    )
    return items, sellers, dict(leaf=leaf, leaf_top=leaf_top, pop=pop, price=price, paths=paths)


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


def _sessions(rng, n_users: int, n_days: int, cat: dict):
    leaf, leaf_top, pop, price = cat["leaf"], cat["leaf_top"], cat["pop"], cat["price"]
    paths = cat["paths"]
    n_leaves, n_tops = len(paths), len(TREE)
    item_of_leaf = _sampler(leaf, pop, n_leaves)
    leaf_pop = np.bincount(leaf, pop, minlength=n_leaves)
    leaf_of_top = _sampler(leaf_top, leaf_pop + 1e-9, n_tops)
    leaf_index = {p.split(".")[-1]: i for i, p in enumerate(paths)}
    complement = np.full(n_leaves, -1)
    for a, b in COMPLEMENTS.items():
        complement[leaf_index[a]] = leaf_index[b]
    # users: favourite top categories, price sensitivity, new vs returning
    taste = rng.dirichlet(np.ones(n_tops) * 0.3, n_users)
    sensitivity = rng.uniform(0.0, 1.2, n_users)
    is_new = rng.random(n_users) < 0.3
    window = n_days * 86400
    start = END.timestamp() - window
    first_seen = np.where(
        is_new, start + rng.uniform(0, window * 0.9, n_users), start - rng.uniform(1, 365, n_users) * 86400
    )
    activity = rng.lognormal(0, 0.8, n_users)
    n_sess = 1 + rng.poisson(4.5 * activity / activity.mean())
    su = np.repeat(np.arange(n_users), n_sess)
    active_from = np.maximum(first_seen[su], start)
    s_start = active_from + rng.uniform(0, 1, len(su)) * (END.timestamp() - 3600 - active_from)
    s_len = 1 + rng.poisson(5.0, len(su))
    # first item of each session from the user's taste (80%) or anywhere
    cum_taste = np.cumsum(taste, axis=1)
    top = (rng.random(len(su))[:, None] > cum_taste[su]).sum(1).clip(0, n_tops - 1)
    explore = rng.random(len(su)) < 0.2
    top[explore] = rng.integers(0, n_tops, explore.sum())
    cur = item_of_leaf(leaf_of_top(top, rng), rng)
    steps_item, steps_sess, steps_pos = [cur], [np.arange(len(su))], [np.zeros(len(su), int)]
    alive = np.arange(len(su))
    for k in range(1, int(s_len.max())):
        alive = alive[s_len[alive] > k]
        if not len(alive):
            break
        prev = steps_item[-1][np.searchsorted(steps_sess[-1], alive)]
        r = rng.random(len(alive))
        comp = complement[leaf[prev]]
        next_leaf = np.where((r < 0.45) & (comp >= 0), comp, leaf[prev])  # complements follow each other
        fresh = r > 0.85
        next_leaf[fresh] = leaf_of_top(top[alive[fresh]], rng)
        nxt = item_of_leaf(next_leaf, rng)
        steps_item.append(nxt)
        steps_sess.append(alive)
        steps_pos.append(np.full(len(alive), k))
    item = np.concatenate(steps_item)
    sess = np.concatenate(steps_sess)
    step = np.concatenate(steps_pos)
    return dict(
        item=item,
        sess=sess,
        step=step,
        su=su,
        s_start=s_start,
        sensitivity=sensitivity,
        first_seen=first_seen,
        is_new=is_new,
        activity=n_sess,
        price=price,
        complement=complement,
    )


def _events(rng, s: dict) -> pl.DataFrame:
    item, sess, step = s["item"], s["sess"], s["step"]
    user = s["su"][sess]
    n = len(item)
    dwell = np.clip(rng.lognormal(9.6, 0.9, n), 500, 600_000)  # ms, median ~15 s
    gap = dwell / 1000 + rng.exponential(20, n)
    order = np.lexsort((step, sess))
    g = gap[order]
    before = np.cumsum(g) - g  # exclusive running sum over all sessions in order
    first = np.r_[True, sess[order][1:] != sess[order][:-1]]
    group = np.cumsum(first) - 1
    t = np.empty(n)
    t[order] = s["s_start"][sess[order]] + before - before[first][group]
    position = np.minimum(24, (rng.pareto(1.2, n) + 1).astype(int))
    page = np.where(step > 0, rng.choice([1, 3], n, p=[0.3, 0.7]), rng.choice(4, n, p=[0.5, 0.25, 0.2, 0.05]))
    rel_price = np.log(s["price"][item] / np.median(s["price"]))
    price_factor = np.exp(-s["sensitivity"][user] * np.clip(rel_price, 0, None))
    click = rng.random(n) < 0.42 / position**0.3
    cart = click & (rng.random(n) < 0.22 * price_factor)
    buy = cart & (rng.random(n) < 0.45)
    removed = cart & ~buy & (rng.random(n) < 0.25)
    review = buy & (rng.random(n) < 0.3)
    rating = np.clip(np.round(rng.normal(4.2, 0.9, n)), 1, 5)
    parts = []
    for name, mask, offset in (
        ("view", np.ones(n, bool), 0.0),
        ("click", click, 0.3),
        ("add_to_cart", cart, 0.6),
        ("remove_from_cart", removed, 0.8),
        ("purchase", buy, 0.9),
    ):
        idx = np.flatnonzero(mask)
        parts.append((name, idx, t[idx] + offset * gap[idx]))
    idx = np.flatnonzero(review)
    parts.append(("review", idx, t[idx] + rng.uniform(1, 10, len(idx)) * 86400))
    frames = []
    for name, idx, ts in parts:
        keep = ts < END.timestamp()
        idx, ts = idx[keep], ts[keep]
        frames.append(
            pl.DataFrame(
                {
                    "ts": (ts * 1e6).astype("datetime64[us]"),
                    "u": user[idx],
                    "i": item[idx],
                    "event_type": [name] * len(idx),
                    "sess": sess[idx],
                    "dwell_ms": np.where(name == "view", dwell[idx], np.nan),
                    "position": np.where(name in ("view", "click"), position[idx], -1),
                    "page": page[idx],
                    "price": s["price"][item[idx]],
                    "rating": rating[idx] if name == "review" else np.full(len(idx), np.nan),
                }
            )
        )
    ev = pl.concat(frames)
    return ev.select(
        "ts",
        pl.format("u{}", pl.col("u").cast(pl.Utf8).str.zfill(6)).alias("user_id"),
        pl.format("i{}", pl.col("i").cast(pl.Utf8).str.zfill(5)).alias("item_id"),
        "event_type",
        pl.format("S{}", pl.col("sess").cast(pl.Utf8).str.zfill(7)).alias("session_id"),
        pl.col("dwell_ms").fill_nan(None).cast(pl.Int64),
        pl.when(pl.col("position") > 0).then(pl.col("position")).alias("position"),
        pl.col("page").replace_strict(list(range(4)), PAGES).alias("page"),
        "price",
        pl.col("rating").fill_nan(None),
        pl.lit("demo").alias("source"),
    ).sort("user_id", "ts")


def build_demo_shop(
    users: int = 20000,
    items: int = 5000,
    days: int = 60,
    seed: int = 7,
    *,
    out_dir: str | Path | None = None,
    db_path=None,
    progress: Callable[[float, str], None] | None = None,
) -> DemoSummary:
    """Generate the demo shop into ``out_dir`` and load it through the ingest path."""
    from core.data.ingest import ingest_catalog, ingest_events

    started = time.perf_counter()
    report = progress or (lambda f, m="": None)
    out = Path(out_dir) if out_dir else settings().data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    report(0.02, "catalog")
    item_frame, seller_frame, cat = _catalog(rng, items, days)
    report(0.1, "sessions")
    s = _sessions(rng, users, days, cat)
    report(0.3, "events")
    events = _events(rng, s)
    n_sess_user = np.bincount(s["su"], minlength=users)
    segment = np.where(
        s["is_new"], "new", np.where(n_sess_user >= np.quantile(n_sess_user, 0.95), "vip", "returning")
    )
    user_frame = pl.DataFrame(
        {
            "user_id": [f"u{u:06d}" for u in range(users)],
            "first_seen": (s["first_seen"] * 1e6).astype("datetime64[us]"),
            "region": rng.choice(REGIONS, users, p=[0.35, 0.25, 0.2, 0.2]),
            "device": rng.choice(DEVICES, users, p=[0.6, 0.3, 0.1]),
            "segment": segment,
        }
    )
    n_promo = max(3, items // 25)
    promo_items = rng.choice(items, n_promo, replace=False)
    phase = rng.integers(0, 3, n_promo)  # 0 ended, 1 active now, 2 upcoming
    e = END.timestamp()
    starts = np.where(phase == 0, e - 30 * 86400, np.where(phase == 1, e - 5 * 86400, e + 3 * 86400))
    ends = np.where(phase == 0, e - 10 * 86400, np.where(phase == 1, e + 9 * 86400, e + 20 * 86400))
    promos = pl.DataFrame(
        {
            "promotion_id": [f"p{i:04d}" for i in range(n_promo)] + ["p-cat-1"],
            "item_id": [f"i{i:05d}" for i in promo_items] + [None],
            "category": [None] * n_promo + ["grocery.snacks"],
            "discount": np.round(np.r_[rng.choice([0.1, 0.15, 0.2, 0.3], n_promo), 0.1], 2),
            "starts_at": (np.r_[starts, e - 7 * 86400] * 1e6).astype("datetime64[us]"),
            "ends_at": (np.r_[ends, e + 7 * 86400] * 1e6).astype("datetime64[us]"),
        }
    )
    files = {}
    for name, frame in (
        ("sellers", seller_frame),
        ("items", item_frame),
        ("promotions", promos),
        ("users", user_frame),
        ("events", events),
    ):
        files[name] = out / f"{name}.parquet"
        frame.write_parquet(files[name])
    report(0.45, "loading catalog")
    for name in ("sellers", "items", "promotions", "users"):
        ingest_catalog(files[name], name, db_path=db_path)
    report(0.55, "loading events")
    result = ingest_events(
        files["events"],
        "native",
        db_path=db_path,
        source="demo",
        progress=lambda f, m="": report(0.55 + 0.45 * f, m),
    )
    return DemoSummary(
        result.loaded, users, items, len(seller_frame), len(promos), time.perf_counter() - started, files
    )
