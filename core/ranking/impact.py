"""Impact of a draft rule set on a sample of shoppers, before anything is published."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from core import store
from core.ranking.homepage import DEFAULT_K, DEFAULT_M, prepare
from core.ranking.pipeline import list_metrics, model_only, rank_homepage
from core.ranking.rules import RuleSet


@dataclass
class Impact:
    users: int
    summary: pl.DataFrame  # metric, model only, with rules
    per_rule: pl.DataFrame  # rule_id, kind, homepages changed (vs the same set without that rule)
    conflicts: int


def sample_users(n: int, seed: int = 0, db_path=None) -> list[str]:
    """A reproducible sample of shoppers who have history."""
    frame = store.query("SELECT DISTINCT user_id FROM events ORDER BY user_id", db_path=db_path)
    ids = frame["user_id"].to_list()
    rng = np.random.default_rng(seed)
    if len(ids) > n:
        ids = sorted(rng.choice(ids, n, replace=False).tolist())
    return ids


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def rule_set_impact(
    rule_set: RuleSet, n_users: int = 500, k: int = DEFAULT_K, m: int = DEFAULT_M, seed: int = 0, db_path=None
) -> Impact:
    users = sample_users(n_users, seed, db_path)
    prepared, *_ = prepare(users, rule_set, m, db_path, with_history=False)
    ruled = [rank_homepage(p.user, p.candidates, rule_set, k, p.now) for p in prepared]
    plain = [model_only(p.user, p.candidates, k) for p in prepared]
    ruled_m = [list_metrics(h, p.candidates, rule_set, p.user, p.now) for h, p in zip(ruled, prepared)]
    plain_m = [list_metrics(h, p.candidates, rule_set, p.user, p.now) for h, p in zip(plain, prepared)]
    metrics = [
        "intra_list_diversity",
        "categories_covered",
        "protected_share",
        "calibration_kl",
        "score_lost",
    ]
    summary = pl.DataFrame(
        {
            "metric": metrics,
            "model only": [_mean([x.get(name) for x in plain_m]) for name in metrics],
            "with rules": [_mean([x.get(name) for x in ruled_m]) for name in metrics],
        }
    )
    lists = [[s.item_id for s in h.slots] for h in ruled]
    rows = []
    for rule in rule_set.rules:
        without = replace(rule_set, rules=[r for r in rule_set.rules if r is not rule])
        changed = sum(
            [s.item_id for s in rank_homepage(p.user, p.candidates, without, k, p.now).slots] != base
            for p, base in zip(prepared, lists)
        )
        rows.append(
            {
                "rule_id": rule.rule_id,
                "kind": rule.kind,
                "homepages changed": changed,
                "share": changed / max(1, len(prepared)),
            }
        )
    per_rule = (
        pl.DataFrame(rows)
        if rows
        else pl.DataFrame(
            schema={"rule_id": pl.Utf8, "kind": pl.Utf8, "homepages changed": pl.Int64, "share": pl.Float64}
        )
    )
    return Impact(len(prepared), summary, per_rule, sum(bool(h.conflicts) for h in ruled))
