"""Each rule kind, each parameter: honoured when given, refused when out of range or unknown. Plus a kind
that exists only in this file, to show that a new kind needs one new module and no other change."""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from core.errors import InputError
from core.ranking import kinds, rerank
from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Stage, Widget
from core.ranking.pipeline import rank_homepage
from core.ranking.reasons import Reason, ReasonCode
from core.ranking.rule_sets import rules_from_frame, rules_to_frame
from core.ranking.rules import Rule, RuleSet, validate
from core.ranking.state import Candidates, UserContext

NOW = datetime(2026, 10, 31)
USER = UserContext("u1", {"region": "north"}, {"top0.mid": 0.7, "top3.mid": 0.3}, set())


def items(m=40):
    return pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(m)],
            "category": [f"top{i % 4}.mid.leaf{i % 8}" for i in range(m)],
            "brand": [f"b{i % 3}" for i in range(m)],
            "seller_id": [f"s{i % 5}" for i in range(m)],
            "seller_tier": ["small" if i % 5 == 4 else "large" for i in range(m)],
            "price": np.linspace(5, 200, m),
            "created_at": [datetime(2026, 10, 25) if i % 7 == 0 else datetime(2025, 1, 1) for i in range(m)],
            "in_stock": [True] * m,
            "promoted": [i % 9 == 0 for i in range(m)],
        }
    )


@pytest.fixture(scope="module")
def c():
    rng = np.random.default_rng(0)
    m = 40
    scores = np.sort(rng.normal(0, 2, m))[::-1].copy()
    return Candidates(
        [f"i{i}" for i in range(m)], scores, np.arange(1, m + 1), rng.normal(size=(m, 8)), items(m)
    )


def rank(c, *rules, k=10, user=USER):
    return rank_homepage(user, c, RuleSet(rules=list(rules)), k, NOW)


def problems(kind, **params):
    return validate(RuleSet(rules=[Rule("r", kind, params)]), {f"i{i}" for i in range(40)})


# --- conditions: every field matches what it says -------------------------------------------------


@pytest.mark.parametrize(
    "condition, expected",
    [
        ({"item_id": ["i1", "i2"]}, [1, 2]),
        ({"category": "top1.mid.leaf5"}, [5, 13, 21, 29, 37]),
        ({"category": ["top1"]}, [1, 5, 9, 13, 17, 21, 25, 29, 33, 37]),
        ({"brand": "b2", "seller_tier": "small"}, [14, 29]),
        ({"seller_id": ["s4"]}, [4, 9, 14, 19, 24, 29, 34, 39]),
        ({"price_min": 192}, [38, 39]),
        ({"price_max": 10}, [0, 1]),
        ({"new_days": 10}, [0, 7, 14, 21, 28, 35]),
        ({"promoted": True}, [0, 9, 18, 27, 36]),
        ({"promoted": False, "item_id": ["i0", "i1"]}, [1]),
    ],
)
def test_each_condition_field_matches(condition, expected):
    mask = Condition.from_dict(condition).matches(items(), NOW)
    assert np.flatnonzero(mask).tolist() == expected


def test_a_category_prefix_is_not_a_text_prefix():
    frame = pl.DataFrame({"item_id": ["a", "b", "c"], "category": ["top1", "top1.x", "top10"]})
    assert Condition(category=("top1",)).matches(frame, NOW).tolist() == [True, True, False]


@pytest.mark.parametrize("bad", [{"colour": "red"}, {"price_min": -1}, {"price_min": 9, "price_max": 1}])
def test_a_bad_condition_is_refused(bad):
    with pytest.raises(InputError):
        Condition.from_dict(bad)


# --- pin -----------------------------------------------------------------------------------------


def test_pin_item_and_slot_are_honoured(c):
    home = rank(c, Rule("p", "pin", {"item_id": "i30", "slot": 3}))
    assert home.item_ids[2] == "i30"
    assert home.slots[2].reasons == [Reason(kinds.get("pin").Code.PINNED, "p", {"slot": 3})]


@pytest.mark.parametrize(
    "params, says",
    [
        ({"slot": 3}, "no item"),
        ({"item_id": "i1", "slot": 49}, "slot 49"),
        ({"item_id": "i1", "slot": 2.5}, "whole number"),
        ({"item_id": "zz", "slot": 1}, "'zz' is not in the catalog"),
    ],
)
def test_pin_refuses(params, says):
    assert any(says in p for p in problems("pin", **params))


# --- block, boost, bury --------------------------------------------------------------------------


def test_block_condition_is_honoured(c):
    home = rank(c, Rule("b", "block", {"condition": {"brand": ["b0"]}}))
    assert all(int(i[1:]) % 3 != 0 for i in home.item_ids)


def test_block_refuses_an_empty_condition():
    assert any("blocks every item" in p for p in problems("block", condition={}))


def test_boost_factor_is_honoured(c):
    plain = rank(c)
    weak = rank(c, Rule("up", "boost", {"condition": {"item_id": ["i12"]}, "factor": 1.01}))
    strong = rank(c, Rule("up", "boost", {"condition": {"item_id": ["i12"]}, "factor": 100}))
    assert "i12" not in plain.item_ids[:3]
    assert weak.item_ids == plain.item_ids
    assert strong.item_ids[0] == "i12"


def test_bury_factor_is_honoured(c):
    home = rank(c, Rule("down", "bury", {"condition": {"item_id": ["i0"]}, "factor": 0.001}))
    assert "i0" not in home.item_ids
    assert rank(c, Rule("down", "bury", {"condition": {"item_id": ["i0"]}, "factor": 1})).item_ids[0] == "i0"


@pytest.mark.parametrize(
    "kind, params, says",
    [
        ("boost", {"factor": 0.5}, "factor 0.5"),
        ("boost", {"factor": 101}, "factor 101"),
        ("boost", {"delta": 0.2}, "no parameter 'delta'"),
        ("bury", {"factor": 0}, "factor 0"),
        ("bury", {"factor": 1.5}, "factor 1.5"),
        ("bury", {"delta": -0.2}, "no parameter 'delta'"),
    ],
)
def test_boost_and_bury_refuse(kind, params, says):
    assert any(says in p for p in problems(kind, condition={"brand": "b1"}, **params))


def test_a_refused_parameter_is_never_silently_ignored(c):
    """A saved rule with a parameter the pipeline does not honour is not applied, and says so."""
    home = rank(c, Rule("down", "bury", {"condition": {"item_id": ["i0"]}, "delta": -5}))
    assert home.item_ids[0] == "i0"
    assert [r.code.value for r in home.conflicts] == ["rule.invalid"]
    assert "delta" in home.conflict_messages()[0]


# --- reserve -------------------------------------------------------------------------------------


def test_reserve_slots_are_honoured(c):
    home = rank(c, Rule("r", "reserve", {"condition": {"seller_tier": "small"}, "slots": 4}))
    assert sum(int(i[1:]) % 5 == 4 for i in home.item_ids) >= 4


def test_reserve_within_is_honoured(c):
    home = rank(c, Rule("r", "reserve", {"condition": {"seller_tier": "small"}, "slots": 2, "within": 3}))
    assert sum(int(i[1:]) % 5 == 4 for i in home.item_ids[:3]) >= 2
    plain = rank(c)
    assert sum(int(i[1:]) % 5 == 4 for i in plain.item_ids[:3]) < 2  # the rule did it


@pytest.mark.parametrize(
    "params, says",
    [
        ({"slots": 0}, "slots 0"),
        ({"slots": 3, "within": 2}, "cannot fit"),
        ({"slots": 1, "within": 60}, "within 60"),
    ],
)
def test_reserve_refuses(params, says):
    assert any(says in p for p in problems("reserve", condition={"promoted": True}, **params))


# --- cap -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["brand", "category", "seller_id", "seller_tier"])
def test_cap_attribute_and_max_are_honoured(c, attribute):
    clustered = c.attrs.sort(attribute, "item_id")  # the model likes one value's items best
    ids = clustered["item_id"].to_list()
    ranked = Candidates(ids, np.linspace(3, -3, 40), np.arange(1, 41), c.embeddings, clustered)
    k = 2 * clustered[attribute].n_unique()  # room for 2 of each value

    def most(home):
        return max(
            clustered.filter(pl.col("item_id").is_in(home.item_ids))[attribute].value_counts()["count"]
        )

    assert most(rank(ranked, k=k)) > 2
    assert most(rank(ranked, Rule("cap", "cap", {"attribute": attribute, "max": 2}), k=k)) == 2


@pytest.mark.parametrize(
    "params, says",
    [
        ({"attribute": "colour", "max": 2}, "attribute 'colour'"),
        ({"attribute": "brand", "max": 0}, "max 0"),
        ({"attribute": "brand", "max": 2, "top_k": 6}, "no parameter 'top_k'"),
        ({"attribute": "brand", "max": 2, "depth": 6}, "no parameter 'depth'"),
    ],
)
def test_cap_refuses(params, says):
    assert any(says in p for p in problems("cap", **params))


# --- diversity and calibration -------------------------------------------------------------------


def test_mmr_lambda_is_honoured(c):
    plain = rank(c)
    assert rank(c, Rule("d", "diversity", {"method": "mmr", "lambda": 1.0})).item_ids == plain.item_ids
    varied = rank(c, Rule("d", "diversity", {"method": "mmr", "lambda": 0.3}))
    pool = list(range(40))
    rel = np.exp(c.scores - c.scores.max())
    expected = rerank.mmr(rel / rel.max(), c.embeddings, 20, lam=0.3)[:10]
    assert varied.item_ids == [f"i{i}" for i in expected if pool]


def test_dpp_theta_is_honoured(c):
    a = rank(c, Rule("d", "diversity", {"method": "dpp", "theta": 0.2}))
    b = rank(c, Rule("d", "diversity", {"method": "dpp", "theta": 0.95}))
    assert a.item_ids != b.item_ids
    assert kinds.get("diversity").Code.SWAP in {r.code for s in a.slots for r in s.reasons}


@pytest.mark.parametrize(
    "params, says",
    [
        ({"method": "random"}, "method 'random'"),
        ({"method": "dpp", "lambda": 0.5}, "lambda applies only when method is mmr"),
        ({"method": "dpp", "theta": 1}, "theta 1"),
        ({"method": "mmr", "lambda": 1.2}, "lambda 1.2"),
    ],
)
def test_diversity_refuses(params, says):
    assert any(says in p for p in problems("diversity", **params))


def test_calibration_strength_is_honoured(c):
    from core.ranking.metrics import list_metrics

    user = UserContext("u", {}, {"top3.mid.leaf3": 1.0}, set())
    kl = lambda h: list_metrics(h, c, RuleSet(), user)["calibration_kl"]  # noqa: E731
    at = lambda s: rank(c, Rule("cal", "calibration", {"strength": s}), user=user)  # noqa: E731
    plain = rank(c, user=user)
    assert at(0.0).item_ids == plain.item_ids
    assert kl(at(0.9)) < kl(at(0.2)) < kl(plain)


def test_calibration_in_ranked_order_shows_the_same_items_with_the_likeliest_first(c):
    user = UserContext("u", {}, {"top3.mid.leaf3": 0.5, "top1.mid.leaf1": 0.5}, set())
    at = lambda order: rank(c, Rule("cal", "calibration", {"strength": 0.8, "order": order}), user=user)  # noqa: E731
    greedy, ranked = at("calibrated"), at("ranked")
    assert greedy.item_ids != ranked.item_ids
    assert sorted(greedy.item_ids) == sorted(ranked.item_ids)
    scores = {item: s for item, s in zip(c.item_ids, c.scores)}
    assert [scores[i] for i in ranked.item_ids] == sorted((scores[i] for i in ranked.item_ids), reverse=True)


def test_a_calibration_rule_saved_without_an_order_keeps_the_calibrated_order():
    spec = kinds.get("calibration").parse({"strength": 0.3}, "rule cal")
    assert spec.order == "calibrated"
    assert kinds.get("calibration").parse({"strength": 0.3, "order": "ranked"}, "rule cal").order == "ranked"
    assert any("order 'best'" in p for p in problems("calibration", strength=0.3, order="best"))


def test_calibration_refuses_a_strength_above_one():
    assert any("strength 2" in p for p in problems("calibration", strength=2))


def test_the_old_diversity_calibration_parameter_becomes_a_calibration_rule():
    rs = RuleSet.from_json(
        {
            "rules": [
                {
                    "rule_id": "d",
                    "kind": "diversity",
                    "params": {"method": "dpp", "theta": 0.7, "calibration": 0.3},
                }
            ]
        }
    )
    assert [(r.rule_id, r.kind, r.params) for r in rs.rules] == [
        ("d", "diversity", {"method": "dpp", "theta": 0.7}),
        ("d-calibration", "calibration", {"strength": 0.3}),
    ]
    assert validate(rs) == []


# --- fairness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("p, alpha", [(0.3, 0.1), (0.3, 0.4), (0.25, 0.45)])
def test_fairness_p_and_alpha_are_honoured(c, p, alpha):
    rule = Rule("f", "fairness", {"condition": {"seller_tier": "small"}, "p": p, "alpha": alpha})
    home = rank(c, rule, k=20)
    protected = np.cumsum([int(i[1:]) % 5 == 4 for i in home.item_ids])
    assert (protected >= rerank.fair_min_counts(20, p, alpha)).all()


def test_fairness_alpha_changes_the_homepage(c):
    rules = [
        Rule("f", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.3, "alpha": a})
        for a in (0.1, 0.4)
    ]
    assert rank(c, rules[0], k=20).item_ids != rank(c, rules[1], k=20).item_ids


@pytest.mark.parametrize(
    "params, says",
    [
        ({"p": 1}, "p 1"),
        ({"p": 0.2, "alpha": 0.6}, "alpha 0.6"),
        ({"condition": {}, "p": 0.2}, "no protected group"),
    ],
)
def test_fairness_refuses(params, says):
    assert any(says in x for x in problems("fairness", **{"condition": {"seller_tier": "small"}, **params}))


def test_blank_means_the_default():
    """A blank field (None, NaN, '') is the kind's default, never the text 'nan'."""
    assert kinds.get("boost").parse({"condition": {"brand": "b1"}, "factor": float("nan")}).factor == 1.5
    assert kinds.get("fairness").parse({"condition": {"brand": "b1"}, "p": ""}).p == 0.25
    assert kinds.get("reserve").parse({"slots": 2, "within": None}).within is None


# --- a kind that lives in this file only ---------------------------------------------------------


@dataclass(frozen=True)
class SpotlightParams:
    item_id: str
    factor: float


class SpotlightCode(ReasonCode):
    LIT = ("spotlight.lit", "spotlight", "in the spotlight ×{factor:g} (rule {rule})", "#FFE8A3")


class Spotlight(Kind):
    name = "spotlight"
    title = "Spotlight one item"
    summary = "Multiply one item's relevance."
    stage = Stage.SCORES
    order = 9
    Params = SpotlightParams
    Code = SpotlightCode
    fields = (
        Field("item_id", "Item", Widget.ITEM),
        Field("factor", "Factor", Widget.NUMBER, unit="×", lo=1, hi=1000, default=10.0),
    )
    table = {"target": "item_id", "value": "factor"}

    def apply(self, state, rules):
        for r in rules:
            hit = np.array([i == r.spec.item_id for i in state.c.item_ids])
            state.rel = np.where(hit, state.rel * r.spec.factor, state.rel)
            for i in np.flatnonzero(hit & state.ok):
                state.note(int(i), Reason(SpotlightCode.LIT, r.rule_id, {"factor": r.spec.factor}))

    def sentence(self, p):
        return f"spotlight {p.item_id} ×{p.factor:g}"


@pytest.fixture
def spotlight():
    with kinds.registered(Spotlight()) as kind:
        yield kind


def test_a_new_kind_is_listed_with_its_form(spotlight):
    assert "spotlight" in kinds.names()
    assert [f.widget for f in kinds.get("spotlight").fields] == [Widget.ITEM, Widget.NUMBER]
    assert SpotlightCode.LIT in kinds.codes()


def test_a_new_kind_is_validated(spotlight):
    assert any(
        "factor 0.5 must be a number in [1, 1000]" in p
        for p in problems("spotlight", item_id="i3", factor=0.5)
    )
    assert problems("spotlight", item_id="i3") == []


def test_a_new_kind_goes_through_the_editor_table(spotlight):
    rs = RuleSet(rules=[Rule("s", "spotlight", {"item_id": "i3", "factor": 50})])
    frame = rules_to_frame(rs)
    assert frame.select("kind", "target", "value").row(0) == ("spotlight", "i3", 50.0)
    assert rules_from_frame(frame)[0].params == {"item_id": "i3", "factor": 50.0}


def test_a_new_kind_ranks_and_gives_its_reason_and_sentence(spotlight, c):
    rule = Rule("s", "spotlight", {"item_id": "i9", "factor": 500})
    home = rank(c, rule)
    assert home.item_ids[0] == "i9"
    assert home.slots[0].reasons[0].text() == "in the spotlight ×500 (rule s)"
    assert rule.describe() == "s: spotlight i9 ×500"
    assert home.rules_applied == ["s: spotlight i9 ×500"]


def test_an_unregistered_kind_is_refused():
    assert kinds.find("spotlight") is None
    assert problems("spotlight", item_id="i3") == [
        f"rule 1: unknown kind 'spotlight' — use one of {', '.join(kinds.names())}"
    ]
