"""Impact of a draft rule set on a sample of shoppers, before anything is published."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from core import store
from core.ranking.homepage import prepare
from core.ranking.kinds.fairness import protected_meaning
from core.ranking.limits import DEFAULT_K, DEFAULT_M
from core.ranking.metrics import METRICS, list_metrics
from core.ranking.pipeline import model_only, rank_homepage
from core.ranking.rules import RuleSet


@dataclass
class Impact:
    users: int
    summary: (
        pl.DataFrame
    )  # metric (its name), label, meaning, model only, with rules, delta, higher_is_better
    per_rule: pl.DataFrame  # rule_id, kind, homepages changed (vs the same set without that rule), share
    conflicts: int  # homepages with at least one conflict
    protected: str  # what 'protected' means for the fairness rule in force, in words

    def metric(self, name: str) -> dict:
        """One metric's row: label, meaning, model only, with rules, delta, higher_is_better."""
        return self.summary.filter(pl.col("metric") == name).to_dicts()[0]


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


def _summary(plain: list[dict], ruled: list[dict]) -> pl.DataFrame:
    rows = []
    for name, (label, meaning, higher) in METRICS.items():
        before, after = _mean([x.get(name) for x in plain]), _mean([x.get(name) for x in ruled])
        delta = None if before is None or after is None else after - before
        rows.append(
            {
                "metric": name,
                "label": label,
                "meaning": meaning,
                "model only": before,
                "with rules": after,
                "delta": delta,
                "higher_is_better": higher,
            }
        )
    return pl.DataFrame(rows)


def _per_rule(rule_set: RuleSet, prepared, lists: list[list[str]], k: int) -> pl.DataFrame:
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
    schema = {"rule_id": pl.Utf8, "kind": pl.Utf8, "homepages changed": pl.Int64, "share": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def rule_set_impact(
    rule_set: RuleSet, n_users: int = 500, k: int = DEFAULT_K, m: int = DEFAULT_M, seed: int = 0, db_path=None
) -> Impact:
    users = sample_users(n_users, seed, db_path)
    prepared, *_ = prepare(users, rule_set, m, db_path, with_history=False)
    ruled = [rank_homepage(p.user, p.candidates, rule_set, k, p.now) for p in prepared]
    plain = [model_only(p.user, p.candidates, k) for p in prepared]
    ruled_m = [list_metrics(h, p.candidates, rule_set, p.user, p.now) for h, p in zip(ruled, prepared)]
    plain_m = [list_metrics(h, p.candidates, rule_set, p.user, p.now) for h, p in zip(plain, prepared)]
    lists = [[s.item_id for s in h.slots] for h in ruled]
    return Impact(
        users=len(prepared),
        summary=_summary(plain_m, ruled_m),
        per_rule=_per_rule(rule_set, prepared, lists, k),
        conflicts=sum(bool(h.conflicts) for h in ruled),
        protected=protected_meaning(rule_set.rules),
    )
