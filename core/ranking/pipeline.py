"""The ranking pipeline, pure: candidates + rule set → one homepage, with the reasons for every slot.

Order: 1 exclusions (out of stock, blocked, already bought) · 2 boosts and buries · 3 diversity
(caps, MMR or DPP, calibration) · 4 fairness (FA*IR minimum share in every prefix) and slot-share
reservations · 5 pins, last, so that they always hold. Conflicts are reported, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from core.ranking import rerank
from core.ranking.rules import Rule, RuleSet, matching_items


@dataclass
class UserContext:
    user_id: str
    attrs: dict = field(default_factory=dict)
    category_mix: dict[str, float] | None = None
    purchased: set[str] = field(default_factory=set)


@dataclass
class Candidates:
    item_ids: list[str]
    scores: np.ndarray  # (M,) model scores (logits)
    model_ranks: np.ndarray  # (M,) 1-based rank in the model's top-M, 0 = added for a rule
    embeddings: np.ndarray  # (M, D)
    attrs: pl.DataFrame  # aligned to item_ids
    # optional: the whole catalog and each candidate's row in it, so rule conditions are matched once
    # per catalog snapshot instead of once per homepage
    catalog_attrs: pl.DataFrame | None = None
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    def column(self, name: str, fill) -> np.ndarray:
        """One attribute as a numpy array aligned to the candidates (nulls filled), cached per catalog."""
        if self.catalog_attrs is None or self.rows is None:
            return self.attrs[name].fill_null(fill).to_numpy()
        key = (id(self.catalog_attrs), "column", name, repr(fill))
        hit = _mask_cache.get(key)
        if hit is None or hit[0] is not self.catalog_attrs:
            hit = (self.catalog_attrs, self.catalog_attrs[name].fill_null(fill).to_numpy())
            _mask_cache[key] = hit
        return hit[1][self.rows]


_mask_cache: dict[tuple, tuple[pl.DataFrame, np.ndarray]] = {}


@dataclass
class Slot:
    slot: int
    item_id: str
    model_score: float
    final_score: float
    model_rank: int
    reasons: list[str]


@dataclass
class Homepage:
    user_id: str
    slots: list[Slot]
    conflicts: list[str] = field(default_factory=list)
    rules_applied: list[str] = field(default_factory=list)

    @property
    def item_ids(self) -> list[str]:
        return [s.item_id for s in self.slots]


def catalog_mask(catalog: pl.DataFrame, condition: dict, now: datetime) -> np.ndarray:
    """Which rows of a catalog snapshot a condition matches, cached while the snapshot lives."""
    key = (id(catalog), json.dumps(condition, sort_keys=True, default=str), now)
    hit = _mask_cache.get(key)
    if hit is None or hit[0] is not catalog:
        if len(_mask_cache) > 512:
            _mask_cache.clear()
        hit = (catalog, matching_items(condition, catalog, now))
        _mask_cache[key] = hit
    return hit[1]


def _match(rule_or_condition, c: Candidates, now: datetime) -> np.ndarray:
    """``matching_items`` over the candidates, via the catalog cache when the candidates carry one."""
    if c.catalog_attrs is None or c.rows is None:
        return matching_items(rule_or_condition, c.attrs, now)
    cond = rule_or_condition.condition if isinstance(rule_or_condition, Rule) else rule_or_condition
    return catalog_mask(c.catalog_attrs, cond, now)[c.rows]


def _relevance(scores: np.ndarray) -> np.ndarray:
    """Scores as positive relevance (softmax over the candidates), so factors scale sensibly."""
    finite = np.where(np.isfinite(scores), scores, -1e9)
    e = np.exp(finite - finite.max()) if len(finite) else finite
    return e / max(e.sum(), 1e-300)


def _top_level(categories) -> np.ndarray:
    return np.array([x.split(".")[0] if x else "unknown" for x in categories], dtype=object)


def _top_categories(c: Candidates) -> np.ndarray:
    """Top-level category per candidate ("unknown" when missing), computed once per catalog."""
    if c.catalog_attrs is None or c.rows is None:
        return _top_level(c.attrs["category"].fill_null("unknown").to_list())
    key = (id(c.catalog_attrs), "top-level categories")
    hit = _mask_cache.get(key)
    if hit is None or hit[0] is not c.catalog_attrs:
        hit = (c.catalog_attrs, _top_level(c.catalog_attrs["category"].fill_null("unknown").to_list()))
        _mask_cache[key] = hit
    return hit[1][c.rows]


def _slots(
    user: UserContext, c: Candidates, order: list[int], rel: np.ndarray, reasons: dict[int, list[str]]
) -> list[Slot]:
    return [
        Slot(
            n + 1,
            c.item_ids[i],
            float(c.scores[i]),
            float(rel[i]),
            int(c.model_ranks[i]),
            reasons.get(i) or ["model"],
        )
        for n, i in enumerate(order)
    ]


def _eligible(user: UserContext, c: Candidates, exclude_purchased: bool) -> np.ndarray:
    ok = c.column("in_stock", True).astype(bool) if "in_stock" in c.attrs.columns else np.ones(len(c), bool)
    ok &= np.isfinite(c.scores)
    if exclude_purchased and user.purchased:
        ok &= ~np.isin(np.array(c.item_ids, dtype=object), list(user.purchased))
    return ok


def model_only(user: UserContext, c: Candidates, k: int, exclude_purchased: bool = True) -> Homepage:
    """The same candidates ranked by the model alone (for the side-by-side preview)."""
    ok = _eligible(user, c, exclude_purchased)
    order = [int(i) for i in np.argsort(-np.where(ok, c.scores, -np.inf), kind="stable")[:k] if ok[i]]
    return Homepage(user.user_id, _slots(user, c, order, _relevance(c.scores), {}))


def rank_homepage(user: UserContext, c: Candidates, rule_set: RuleSet, k: int, now: datetime) -> Homepage:
    rules = rule_set.rules_for({"user_id": user.user_id, **user.attrs}, now)
    by_kind: dict[str, list[Rule]] = {}
    for r in rules:
        by_kind.setdefault(r.kind, []).append(r)
    conflicts: list[str] = []
    reasons: dict[int, list[str]] = {}
    note = lambda i, why: reasons.setdefault(i, []).append(why) if why not in reasons.get(i, []) else None  # noqa
    n = len(c)
    # 1. exclusions
    ok = _eligible(user, c, rule_set.exclude_purchased)
    blocked = np.zeros(n, bool)
    for r in by_kind.get("block", []):
        blocked |= _match(r, c, now)
    ok &= ~blocked
    # 2. boosts and buries
    rel = _relevance(c.scores)
    for r in by_kind.get("boost", []) + by_kind.get("bury", []):
        hit = _match(r, c, now)
        factor = float(r.params.get("factor", 1.0))
        rel = np.where(hit, rel * factor, rel)
        for i in np.flatnonzero(hit & ok):
            note(int(i), "boosted" if r.kind == "boost" else "buried")
    ranked = [int(i) for i in np.argsort(-np.where(ok, rel, -np.inf), kind="stable") if ok[i]]
    plain_top = set(ranked[:k])
    # 3. diversity: one re-ranker per rule set, calibration, caps
    order = ranked
    div = by_kind.get("diversity", [])
    if div:
        p = div[-1].params
        pool = ranked[: max(4 * k, 48)]
        emb, r_pool = c.embeddings[pool], rel[pool] / max(rel[pool].max(), 1e-300)
        depth = min(len(pool), 2 * k)  # enough for caps and fairness to pick from; the rest by relevance
        if p.get("method", "mmr") == "dpp":
            picked = rerank.dpp_greedy(r_pool, emb, depth, theta=float(p.get("theta", 0.7)))
        else:
            picked = rerank.mmr(r_pool, emb, depth, lam=float(p.get("lambda", 0.7)))
        first = [pool[j] for j in picked]
        taken = set(first)
        order = first + [i for i in ranked if i not in taken]
        if p.get("calibration") and user.category_mix:
            order = rerank.calibrate(
                order, rel, _top_categories(c), _top_mix(user.category_mix), k, float(p["calibration"])
            )
        for i in order[:k]:
            if i not in plain_top:
                note(i, "diversity swap")
    caps = {r.params["attribute"]: int(r.params["max"]) for r in by_kind.get("cap", [])}
    if caps:
        values = {a: c.column(a, "") for a in caps if a in c.attrs.columns}
        order = rerank.apply_caps(order, values, {a: v for a, v in caps.items() if a in values}, k)
    # 4. fairness and reservations
    for r in by_kind.get("fairness", []):
        protected = _match(r, c, now) & ok
        p_share, alpha = float(r.params.get("p", 0.25)), float(r.params.get("alpha", 0.1))
        top, swaps, conflict = rerank.fair_rerank(order, protected, k, p_share, alpha)
        chosen = set(top)
        order = top + [i for i in order if i not in chosen]
        for i in swaps:
            note(i, "fairness swap")
        if conflict:
            conflicts.append(f"fairness rule {r.rule_id}: {conflict}")
    for r in by_kind.get("reserve", []):
        want = int(r.params.get("slots", 0))
        hit = _match(r, c, now) & ok
        top = order[:k]
        have = sum(bool(hit[i]) for i in top)
        extra = [i for i in order[k:] if hit[i]][: max(0, want - have)]
        if have + len(extra) < want:
            conflicts.append(
                f"reserve rule {r.rule_id}: {want} slots reserved but only {have + len(extra)} "
                "matching items are available; the rest keep their model order"
            )
        replaceable = [j for j in range(len(top) - 1, -1, -1) if not hit[top[j]]]
        for i, j in zip(extra, replaceable):
            top[j] = i
            note(i, "reserved")
        for i in top:
            if hit[i]:
                note(i, "reserved")
        chosen = set(top)
        order = top + [i for i in order if i not in chosen]
    # 5. pins, last: each on its slot, everything else keeps its order around them
    pins = sorted(by_kind.get("pin", []), key=lambda r: int(r.params.get("slot", 1)))
    index = {item: i for i, item in enumerate(c.item_ids)} if pins else {}
    in_stock = _eligible(user, c, False) if pins else None
    pinned: dict[int, int] = {}  # slot -> candidate
    for r in pins:
        item, slot = str(r.params.get("item_id")), int(r.params.get("slot", 1))
        i = index.get(item)
        if i is None:
            conflicts.append(
                f"pin rule {r.rule_id}: item {item} is not in the catalog; the pin was not applied"
            )
            continue
        if not in_stock[i]:
            conflicts.append(f"pin rule {r.rule_id}: item {item} is out of stock; the pin was not applied")
            continue
        if blocked[i]:
            conflicts.append(f"pin rule {r.rule_id} and a block rule both name item {item}; the pin wins")
        while slot in pinned and slot <= k:
            conflicts.append(
                f"pin rule {r.rule_id}: slot {slot} is already pinned; placed at slot {slot + 1}"
            )
            slot += 1
        if slot > k:
            conflicts.append(f"pin rule {r.rule_id}: slot {slot} is beyond this list of {k}; not applied")
            continue
        pinned[slot] = i
        reasons[i] = ["pinned"]
    pinned_items = set(pinned.values())
    rest = [i for i in order if i not in pinned_items]
    final = []
    for s_ in range(1, k + 1):
        if s_ in pinned:
            final.append(pinned[s_])
        elif rest:
            final.append(rest.pop(0))
    for attr, cap in caps.items():
        if attr not in c.attrs.columns:
            continue
        vals = c.column(attr, "")
        counts: dict = {}
        for i in final:
            counts[vals[i]] = counts.get(vals[i], 0) + 1
        over = [v for v, m in counts.items() if m > cap]
        if over:
            conflicts.append(
                f"cap {attr} ≤ {cap} is broken by pinned items ({', '.join(map(str, over))}); the pins win"
            )
    applied = [r.describe() for r in rules]
    return Homepage(user.user_id, _slots(user, c, final, rel, reasons), conflicts, applied)


def _top_mix(mix: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for cat, share in mix.items():
        out[cat.split(".")[0]] = out.get(cat.split(".")[0], 0.0) + share
    return out


def list_metrics(
    home: Homepage,
    c: Candidates,
    rule_set: RuleSet,
    user: UserContext | None = None,
    now: datetime | None = None,
) -> dict:
    """Diversity, coverage, protected share per prefix vs FA*IR, calibration KL, relevance lost."""
    index = {item: i for i, item in enumerate(c.item_ids)}
    idx = [index[s.item_id] for s in home.slots if s.item_id in index]
    out: dict = {"intra_list_diversity": rerank.intra_list_diversity(c.embeddings[idx]) if idx else 0.0}
    tops = _top_categories(c)
    out["categories_covered"] = len({tops[i] for i in idx})
    fair = [r for r in rule_set.rules if r.kind == "fairness" and r.enabled]
    condition = fair[0].params.get("condition", {}) if fair else {"seller_tier": "small"}
    # a day's resolution is enough for "new items", and keeps the condition cache warm
    now = now or datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    protected = _match(condition, c, now)
    flags = np.asarray(protected, dtype=bool)[idx]
    out["protected_share"] = float(flags.mean()) if len(flags) else None
    if len(flags):
        p = float(fair[0].params.get("p", 0.25)) if fair else 0.25
        alpha = float(fair[0].params.get("alpha", 0.1)) if fair else 0.1
        out["protected_prefix"] = pl.DataFrame(
            {
                "prefix": np.arange(1, len(flags) + 1),
                "protected": np.cumsum(flags),
                "fair_minimum": rerank.fair_min_counts(len(flags), p, alpha),
            }
        )
    counts: dict[str, float] = {}
    for i in idx:
        counts[tops[i]] = counts.get(tops[i], 0) + 1 / len(idx)
    target = _top_mix(user.category_mix) if user is not None and user.category_mix else None
    out["calibration_kl"] = rerank.calibration_kl(target, counts) if target and idx else 0.0
    rel = _relevance(c.scores)
    best = np.sort(rel)[::-1][: len(home.slots)].sum()
    out["score_lost"] = float(1 - rel[idx].sum() / best) if best > 0 else 0.0
    return out
