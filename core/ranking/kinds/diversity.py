"""Diversity: re-rank the top of the list for variety, by MMR (λ) or a DPP (θ). One per rule set: the last
one that applies to the shopper wins."""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.ranking import rerank
from core.ranking.kinds.base import Field, Kind, Stage, Widget
from core.ranking.reasons import ReasonCode

POOL_MIN = 48  # the re-ranker looks at the best max(4k, POOL_MIN) candidates


@dataclass(frozen=True)
class Params:
    method: str  # "mmr" | "dpp"
    lam: float | None  # MMR: weight of relevance against similarity, [0, 1]
    theta: float | None  # DPP: weight of relevance against diversity, [0, 1)


class Code(ReasonCode):
    SWAP = ("diversity.swap", "diversity swap", "swapped in for diversity (rule {rule})", "#DDEBFB")


class Diversity(Kind):
    name = "diversity"
    title = "Diversify the list"
    summary = "Fewer near-duplicates at the top: trade a little relevance for variety."
    stage = Stage.RERANK
    order = 1
    Params = Params
    Code = Code
    fields = (
        Field(
            "method",
            "Method",
            Widget.CHOICE,
            "mmr: maximal marginal relevance · dpp: determinantal point process",
            options=("mmr", "dpp"),
            default="mmr",
        ),
        Field(
            "lambda",
            "Relevance weight λ",
            Widget.NUMBER,
            "1 = relevance only, 0 = variety only",
            "",
            0,
            1,
            default=0.7,
            when=("method", "mmr"),
        ),
        Field(
            "theta",
            "Relevance weight θ",
            Widget.NUMBER,
            "near 1 = relevance only, 0 = variety only",
            "",
            0,
            1,
            hi_open=True,
            default=0.7,
            when=("method", "dpp"),
        ),
    )
    table = {"target": "method"}

    def upgrade(self, rule) -> list:
        """Before calibration was a kind, it was a diversity parameter: split it into its own rule."""
        if "calibration" not in rule.params:
            return [rule]
        params = dict(rule.params)
        strength = params.pop("calibration")
        rules = [replace(rule, params=params)]
        if strength:
            rules.append(
                replace(
                    rule,
                    rule_id=f"{rule.rule_id}-calibration",
                    kind="calibration",
                    params={"strength": strength},
                )
            )
        return rules

    def apply(self, state, rules) -> None:
        p, k = rules[-1].spec, state.k
        pool = state.order[: max(4 * k, POOL_MIN)]
        emb, rel = state.c.embeddings[pool], state.rel[pool] / max(state.rel[pool].max(), 1e-300)
        depth = min(len(pool), 2 * k)  # enough for caps and fairness to pick from; the rest by relevance
        if p.method == "dpp":
            picked = rerank.dpp_greedy(rel, emb, depth, theta=p.theta)
        else:
            picked = rerank.mmr(rel, emb, depth, lam=p.lam)
        state.put_first([pool[j] for j in picked])
        state.swapped_in(Code.SWAP, rules[-1].rule_id)

    def to_row(self, p: Params) -> dict:
        """The method in the target, its weight (λ or θ) in the value column."""
        return {
            **super().to_row(replace(p, lam=None, theta=None)),
            "value": p.theta if p.method == "dpp" else p.lam,
        }

    def from_row(self, row: dict, where: str) -> dict:
        raw = super().from_row(row, where)
        value = row.get("value")
        if value is not None and value == value:
            raw["theta" if raw.get("method") == "dpp" else "lambda"] = value
        return raw

    def sentence(self, p: Params) -> str:
        if p.method == "dpp":
            return f"diversify the top of the list (DPP, θ {p.theta:g})"
        return f"diversify the top of the list (MMR, λ {p.lam:g})"


KIND = Diversity()
