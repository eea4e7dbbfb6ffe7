"""The demo shop's catalog: the category tree with complementary leaves, brands and item titles, sellers
with tiers, log-normal prices per leaf, latent item quality, and promotions. Part of ``core.data.demo``
(which simulates the users and their sessions on it); same seed, same catalog.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from core import category_paths

END = datetime(2026, 10, 31)  # the simulated "now" (UTC): every window ends here
_END = END.replace(tzinfo=UTC).timestamp()
DAY = 86400.0
# top-level category, then "mid: leaves" groups: three levels, e.g. electronics.phones.smartphones
_TREE_SPEC = """
electronics phones: smartphones phone_cases chargers | audio: headphones speakers
| computers: laptops mice keyboards | cameras: digital_cameras lenses memory_cards
home kitchen: cookware knives coffee_makers | furniture: desks chairs | decor: lamps rugs | bath: towels bath_mats
fashion women: dresses handbags heels | men: shirts sneakers watches
beauty skincare: moisturizers serums | makeup: lipstick mascara | hair: shampoo hair_dryers
sports fitness: yoga_mats dumbbells | outdoor: tents backpacks | cycling: bikes helmets
toys kids: puzzles dolls | games: board_games card_games | outdoor_play: scooters trampolines
books fiction: novels comics | learning: textbooks language_courses
garden tools: shovels hoses | plants: seeds plant_pots
pets dogs: dog_food leashes | cats: cat_food cat_litter
grocery drinks: coffee_beans tea | snacks: chips chocolate
"""
TREE = {
    top: {mid.strip(): leaves.split() for mid, leaves in (g.split(":") for g in groups.split("|"))}
    for top, groups in (line.split(" ", 1) for line in _TREE_SPEC.replace("\n|", " |").strip().splitlines())
}
# complementary leaves: after an item of the left leaf, one of the right often comes next
COMPLEMENTS = dict(
    pair.split(">")
    for pair in """
smartphones>phone_cases phone_cases>chargers laptops>mice mice>keyboards headphones>speakers
cookware>knives coffee_makers>coffee_beans desks>chairs dresses>handbags handbags>heels
shirts>sneakers moisturizers>serums lipstick>mascara shampoo>hair_dryers yoga_mats>dumbbells
tents>backpacks bikes>helmets board_games>card_games novels>comics shovels>hoses seeds>plant_pots
dog_food>leashes cat_food>cat_litter chips>chocolate digital_cameras>lenses lenses>memory_cards
towels>bath_mats scooters>helmets
""".split()
)
BRAND_SYLLABLES = "ac no vel tri zen lu ka mo ra fi stel or qu bel ix".split()
ADJECTIVES = "Classic Pro Lite Max Eco Smart Ultra Mini Plus Prime Wireless Compact".split()
NOUNS = {"mice": "Mouse", "lenses": "Lens", "cookware": "Cookware Set"}  # else the leaf in the singular
PLURAL = {"headphones", "heels", "sneakers", "chips", "seeds", "coffee_beans"}  # ...but these stay plural


def _us(seconds: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(seconds) * 1e6).astype(np.int64).astype("datetime64[us]")


def _leaves() -> tuple[list[str], np.ndarray]:
    paths, tops = [], []
    for t, (top, mids) in enumerate(TREE.items()):
        for mid, leaves in mids.items():
            for leaf in leaves:
                paths.append(f"{top}.{mid}.{leaf}")
                tops.append(t)
    return paths, np.array(tops)


def _noun(leaf: str) -> str:
    if leaf in NOUNS or leaf in PLURAL:
        return NOUNS.get(leaf) or leaf.replace("_", " ").title()
    words = leaf.split("_")
    last = words[-1]
    for end, repl in (("ives", "ife"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("s", "")):
        if last.endswith(end):
            last = last[: -len(end)] + repl
            break
    return " ".join([*words[:-1], last]).title()


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choice(BRAND_SYLLABLES, rng.integers(2, 4))).capitalize())
    return sorted(names)


def _catalog(rng: np.random.Generator, n_items: int):
    paths, leaf_top = _leaves()
    n_leaves, n_tops = len(paths), len(TREE)
    leaf = rng.choice(n_leaves, n_items, p=rng.dirichlet(np.full(n_leaves, 2.0)))
    brands = _brand_names(rng, n_tops * 6)
    brand = leaf_top[leaf] * 6 + rng.integers(0, 6, n_items)  # six brands of its own per top category
    large, onboarded, seller = _seller_draws(rng, n_items)
    n_sellers = len(large)
    mu = rng.uniform(2.3, 5.8, n_leaves)  # log-normal prices, each leaf its own level
    price = np.round(np.exp(rng.normal(mu[leaf], 0.45)), 2)
    created = _END - rng.uniform(15, 365, n_items) * DAY
    fresh = rng.random(n_items) < 0.08
    created[fresh] = _END - rng.uniform(0, 14, fresh.sum()) * DAY
    created = np.maximum(created, onboarded[seller] + rng.uniform(0, 2, n_items) * DAY)
    created = np.minimum(created, _END - 3600)
    quality = rng.normal(0, 1, n_items)
    small, new = ~large[seller], created > _END - 14 * DAY
    # exposure bias: popularity is a power law, damped for small sellers and new items
    pop = (1.0 + rng.permutation(n_items)) ** -1.05 * np.exp(0.3 * quality)
    pop *= np.where(small, 0.5, 1.0) * np.where(new, 0.5, 1.0)
    adj = rng.integers(0, len(ADJECTIVES), n_items)
    code = rng.integers(0, 26, n_items), rng.integers(1, 100, n_items)
    nouns = [_noun(p.rsplit(".", 1)[1]) for p in paths]
    titles = [
        f"{brands[b]} {ADJECTIVES[a]} {nouns[lf]} {chr(65 + c)}{k}"
        for b, a, lf, c, k in zip(brand, adj, leaf, *code)
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
            "created_at": _us(created),
        }
    )
    names = [f"{n} Store" for n in _brand_names(rng, min(n_sellers + len(brands), 3000))]  # ≤ 3,600 exist
    names = [n for n in names if n[:-6] not in brands][:n_sellers]
    sellers = pl.DataFrame(
        {
            "seller_id": [f"s{s:03d}" for s in range(n_sellers)],
            "name": names + [f"Store {s}" for s in range(len(names), n_sellers)],
            "tier": np.where(large, "large", "small"),
            "onboarded_at": _us(onboarded),
        }
    )
    latent = dict(leaf=leaf, leaf_top=leaf_top, pop=pop, price=price, quality=quality, small=small, new=new)
    return items, sellers, latent | {"paths": paths, "created": created}


def _seller_draws(rng: np.random.Generator, n_items: int):
    """The sellers (a few large ones first, then small ones; some onboarded in the last 30 days) and which
    one sells each item: (large, onboarded, seller of each item)."""
    n_sellers = max(20, n_items // 50)
    n_large = max(3, n_sellers // 20)
    large = np.arange(n_sellers) < n_large
    onboarded = _END - rng.uniform(60, 3 * 365, n_sellers) * DAY
    newly = ~large & (rng.random(n_sellers) < 0.15)  # small sellers onboarded in the last 30 days
    newly[-1] = True  # at least one
    onboarded[newly] = _END - rng.uniform(1, 30, newly.sum()) * DAY
    small_weight = rng.pareto(1.5, n_sellers - n_large) + 0.2  # small sellers: a long tail of sizes
    seller = np.where(
        rng.random(n_items) < 0.68,  # a few large sellers own most of the catalog
        rng.integers(0, n_large, n_items),
        n_large + rng.choice(n_sellers - n_large, n_items, p=small_weight / small_weight.sum()),
    )
    return large, onboarded, seller


def _promotions(rng: np.random.Generator, n_items: int, cat: dict):
    """A few percent of items on promotion (ended, active at END, upcoming) and one category promotion;
    also per item the promotion window and discount that the events feel."""
    n = min(n_items, max(3, n_items // 25))
    item = np.sort(rng.choice(n_items, n, replace=False))
    phase = rng.permutation(np.arange(n) % 3)  # 0 ended, 1 active at END, 2 upcoming
    starts = (
        _END + np.choose(phase, [-rng.uniform(20, 45, n), -rng.uniform(1, 10, n), rng.uniform(1, 7, n)]) * DAY
    )
    ends = np.where(phase == 1, _END + rng.uniform(3, 14, n) * DAY, starts + rng.uniform(5, 15, n) * DAY)
    discount = rng.choice([0.1, 0.15, 0.2, 0.25, 0.3], n)
    mids = sorted({p.rsplit(".", 1)[0] for p in cat["paths"]})
    mid = mids[rng.integers(len(mids))]
    c_start, c_end = _END - 7 * DAY, _END + 7 * DAY
    frame = pl.DataFrame(
        {
            "promotion_id": [f"p{i:04d}" for i in range(n)] + ["p-cat-1"],
            "item_id": [f"i{i:05d}" for i in item] + [None],
            "category": [None] * n + [mid],
            "discount": np.r_[discount, 0.1],
            "starts_at": _us(np.r_[starts, c_start]),
            "ends_at": _us(np.r_[ends, c_end]),
        },
        schema_overrides={"item_id": pl.Utf8, "category": pl.Utf8},
    )
    in_mid = category_paths.under_any(np.array(cat["paths"])[cat["leaf"]], mid)
    p_start, p_end = np.where(in_mid, c_start, np.inf), np.where(in_mid, c_end, -np.inf)
    p_disc = np.where(in_mid, 0.1, 0.0)
    p_start[item], p_end[item], p_disc[item] = starts, ends, discount  # an item's own promotion wins
    return frame, dict(start=p_start, end=p_end, discount=p_disc)
