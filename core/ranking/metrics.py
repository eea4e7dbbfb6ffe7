"""What a homepage is like, in numbers a merchandiser can compare: variety, categories, the protected
share against FA*IR's minimum, calibration, and the relevance the rules gave up."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from core.category_paths import mix_by_top_level
from core.ranking import rerank
from core.ranking.kinds import fairness
from core.ranking.rules import RuleSet
from core.ranking.state import Candidates, Homepage, UserContext, relevance

# name -> (label, what it means, higher is better?)
METRICS = {
    "intra_list_diversity": (
        "Intra-list diversity",
        "mean pairwise distance of the items (0 = all alike)",
        True,
    ),
    "categories_covered": (
        "Categories covered",
        "distinct categories among the slots, as the cards show them",
        True,
    ),
    "protected_share": ("Protected share", "share of the slots held by the protected group", True),
    "calibration_kl": ("Calibration KL", "distance from the shopper's category mix (0 = the same)", False),
    "score_lost": ("Score lost to rules", "model relevance the rules gave up (0 = none)", False),
}


def list_metrics(
    home: Homepage,
    c: Candidates,
    rule_set: RuleSet,
    user: UserContext | None = None,
    now: datetime | None = None,
) -> dict:
    """The ``METRICS`` for one homepage, plus ``protected_prefix`` (protected items per prefix against the
    FA*IR minimum of the fairness rule in force, or of the default group)."""
    index = {item: i for i, item in enumerate(c.item_ids)}
    idx = [index[s.item_id] for s in home.slots if s.item_id in index]
    out: dict = {"intra_list_diversity": rerank.intra_list_diversity(c.embeddings[idx]) if idx else 0.0}
    shown = c.shown_categories()
    out["categories_covered"] = len({shown[i] for i in idx})
    _, fair = fairness.in_force(rule_set.rules)
    # a day's resolution is enough for "new items", and keeps the condition cache warm
    now = now or datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    flags = c.match(fair.condition, now)[idx]
    out["protected_share"] = float(flags.mean()) if len(flags) else None
    if len(flags):
        out["protected_prefix"] = pl.DataFrame(
            {
                "prefix": np.arange(1, len(flags) + 1),
                "protected": np.cumsum(flags),
                "fair_minimum": rerank.fair_min_counts(len(flags), fair.p, fair.alpha),
            }
        )
    tops = c.top_categories()
    counts: dict[str, float] = {}
    for i in idx:
        counts[tops[i]] = counts.get(tops[i], 0) + 1 / len(idx)
    target = mix_by_top_level(user.category_mix) if user is not None and user.category_mix else None
    out["calibration_kl"] = rerank.calibration_kl(target, counts) if target and idx else 0.0
    rel = relevance(c.scores)
    best = np.sort(rel)[::-1][: len(home.slots)].sum()
    out["score_lost"] = float(1 - rel[idx].sum() / best) if best > 0 else 0.0
    return out
