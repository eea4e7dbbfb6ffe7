"""The ranking pipeline and its re-rankers on small hand-built cases with known answers."""

from datetime import datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ranking import rerank
from core.ranking.kinds.boost import Code as Boost
from core.ranking.kinds.fairness import Code as Fair
from core.ranking.kinds.pin import Code as Pin
from core.ranking.metrics import list_metrics
from core.ranking.pipeline import model_only, rank_homepage
from core.ranking.rules import Rule, RuleSet
from core.ranking.state import Candidates, UserContext

NOW = datetime(2026, 10, 31)


def candidates(m=40, seed=0):
    rng = np.random.default_rng(seed)
    attrs = pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(m)],
            "title": [f"Item {i}" for i in range(m)],
            "category": [f"top{i % 4}.mid.leaf{i % 8}" for i in range(m)],
            "brand": [f"b{i % 3}" for i in range(m)],
            "seller_id": [f"s{i % 5}" for i in range(m)],
            "seller_tier": ["small" if i % 5 == 4 else "large" for i in range(m)],
            "price": np.linspace(5, 200, m),
            "created_at": [datetime(2026, 10, 25) if i % 7 == 0 else datetime(2025, 1, 1) for i in range(m)],
            "in_stock": [i != 3 for i in range(m)],
            "promoted": [i % 9 == 0 for i in range(m)],
        }
    )
    scores = np.sort(rng.normal(0, 2, m))[::-1].copy()
    return Candidates(
        [f"i{i}" for i in range(m)], scores, np.arange(1, m + 1), rng.normal(size=(m, 8)), attrs
    )


USER = UserContext("u1", {"region": "north"}, {"top0.mid.leaf0": 0.5, "top1.mid.leaf1": 0.5}, set())


def ruleset(*rules):
    return RuleSet(rules=list(rules))


def test_model_only_skips_out_of_stock_and_purchased():
    c = candidates()
    home = model_only(UserContext("u", purchased={"i0"}), c, 10)
    assert home.item_ids == [f"i{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9, 10, 11)]


def test_block_boost_bury():
    c = candidates()
    rs = ruleset(
        Rule("b", "block", {"condition": {"item_id": ["i1"]}}),
        Rule("up", "boost", {"condition": {"item_id": ["i6"]}, "factor": 100}),
        Rule("down", "bury", {"condition": {"item_id": ["i0"]}, "factor": 0.001}),
    )
    home = rank_homepage(USER, c, rs, 10, NOW)
    assert "i1" not in home.item_ids
    assert home.item_ids[0] == "i6"
    assert "i0" not in home.item_ids
    assert Boost.BOOSTED in home.slots[0].codes


RULE_POOL = [
    Rule("cap", "cap", {"attribute": "brand", "max": 3}),
    Rule("mmr", "diversity", {"method": "mmr", "lambda": 0.5}),
    Rule("dpp", "diversity", {"method": "dpp", "theta": 0.6, "calibration": 0.3}),
    Rule("fair", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.3, "alpha": 0.1}),
    Rule("res", "reserve", {"condition": {"promoted": True}, "slots": 2}),
    Rule("boost", "boost", {"condition": {"category": "top2"}, "factor": 3.0}),
    Rule("block", "block", {"condition": {"brand": "b1"}}),
]


@settings(max_examples=40, deadline=None)
@given(
    picks=st.lists(st.sampled_from(RULE_POOL), max_size=5, unique_by=lambda r: r.rule_id),
    slot=st.integers(1, 12),
    item=st.integers(0, 39).filter(lambda i: i != 3),
)
def test_a_pin_lands_on_its_slot_under_every_other_rule(picks, slot, item):
    rs = ruleset(*picks, Rule("pin", "pin", {"item_id": f"i{item}", "slot": slot}))
    home = rank_homepage(USER, candidates(), rs, 12, NOW)
    assert home.slots[slot - 1].item_id == f"i{item}"
    assert home.slots[slot - 1].codes == [Pin.PINNED]
    assert len(set(home.item_ids)) == len(home.item_ids)


def test_caps_hold():
    home = rank_homepage(
        USER, candidates(), ruleset(Rule("cap", "cap", {"attribute": "brand", "max": 2})), 6, NOW
    )
    brands = [int(i[1:]) % 3 for i in home.item_ids]
    assert max(brands.count(b) for b in set(brands)) <= 2 and len(home.slots) == 6


def test_mmr_picks_the_diverse_set():
    # two near-duplicates with top relevance and one distinct item: MMR takes one duplicate and the distinct one
    emb = np.array([[1, 0], [1, 0.01], [0, 1]], dtype=float)
    rel = np.array([1.0, 0.99, 0.6])
    assert rerank.mmr(rel, emb, 2, lam=0.5) == [0, 2]
    assert rerank.mmr(rel, emb, 2, lam=1.0) == [0, 1]  # pure relevance


def test_dpp_greedy_matches_bruteforce_on_a_small_case():
    rng = np.random.default_rng(3)
    for _ in range(5):
        emb, rel = rng.normal(size=(8, 5)), rng.random(8)
        L = rerank.dpp_kernel(rel, emb, 0.5) + 1e-6 * np.eye(8)
        greedy = rerank.dpp_greedy(rel, emb, 3, kernel=L)
        best = rerank.dpp_bruteforce(L, 3)
        logdet = lambda s, L=L: np.linalg.slogdet(L[np.ix_(s, s)])[1]  # noqa: E731
        assert logdet(greedy) >= logdet(best) - 0.35  # greedy MAP is near-optimal
    # a kernel where greedy is exact: orthogonal items, the largest diagonal wins
    L = np.diag([5.0, 1.0, 3.0, 2.0])
    assert sorted(rerank.dpp_greedy(None, None, 2, kernel=L)) == sorted(rerank.dpp_bruteforce(L, 2)) == [0, 2]


def test_fair_min_counts_match_the_binomial_table():
    # FA*IR (Zehlike et al. 2017), k=20, p=0.25, alpha=0.1, unadjusted: m(i) = F^-1(alpha; i, p)
    expected = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3]
    assert rerank.fair_min_counts(20, 0.25, 0.1).tolist() == expected


def test_every_prefix_meets_the_fair_minimum():
    c = candidates(60)
    rule = Rule("fair", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.5, "alpha": 0.1})
    home = rank_homepage(USER, c, ruleset(rule), 20, NOW)
    need = rerank.fair_min_counts(20, 0.5, 0.1)
    protected = np.cumsum([int(i[1:]) % 5 == 4 for i in home.item_ids])
    assert (protected >= need).all()
    assert any(Fair.SWAP in s.codes for s in home.slots)
    m = list_metrics(home, c, ruleset(rule), USER)
    assert (m["protected_prefix"]["protected"] >= m["protected_prefix"]["fair_minimum"]).all()


def test_conflicts_are_reported_not_dropped():
    c = candidates()
    rs = ruleset(
        Rule("p1", "pin", {"item_id": "i5", "slot": 2}),
        Rule("p2", "pin", {"item_id": "i6", "slot": 2}),
        Rule("res", "reserve", {"condition": {"item_id": ["i9"]}, "slots": 3}),
        Rule("oos", "pin", {"item_id": "i3", "slot": 4}),
    )
    home = rank_homepage(USER, c, rs, 10, NOW)
    text = " | ".join(home.conflict_messages())
    assert "slot 2 is already pinned" in text and home.item_ids[1] == "i5" and home.item_ids[2] == "i6"
    assert "3 slots reserved but only 1" in text
    assert "i3 is out of stock" in text and "i3" not in home.item_ids


def test_calibration_moves_the_list_towards_the_users_mix():
    c = candidates(80)
    user = UserContext("u", {}, {"top3.mid.leaf3": 1.0}, set())
    plain = rank_homepage(user, c, ruleset(), 12, NOW)
    calibrated = rank_homepage(
        user,
        c,
        ruleset(Rule("d", "diversity", {"method": "mmr", "lambda": 1.0, "calibration": 0.9})),
        12,
        NOW,
    )
    kl = lambda h: list_metrics(h, c, ruleset(), user)["calibration_kl"]  # noqa: E731
    assert kl(calibrated) < kl(plain)


def test_rules_outside_their_window_or_scope_do_nothing():
    c = candidates()
    later = Rule("b", "block", {"condition": {"item_id": ["i0"]}}, starts_at=datetime(2027, 1, 1))
    south = Rule("b2", "block", {"condition": {"item_id": ["i1"]}}, scope='region == "south"')
    home = rank_homepage(USER, c, ruleset(later, south), 5, NOW)
    assert home.item_ids[:2] == ["i0", "i1"]


@pytest.mark.parametrize("bad", ["__import__('os')", "region = 'x'", "region == north or"])
def test_segment_expressions_are_never_evaluated(bad):
    from core.errors import InputError
    from core.ranking.rules import scope_matches

    with pytest.raises(InputError):
        scope_matches(bad, {"region": "north"})


def random_calibration(rng, n: int, n_categories: int, n_target: int) -> tuple:
    """A random calibration problem: n items' categories and relevance, a target mix over the first
    ``n_target`` categories, and a strength λ."""
    categories = np.array([f"c{c}" for c in rng.integers(0, n_categories, size=n)], dtype=object)
    relevance = rng.random(n)
    target = {f"c{c}": float(w) for c, w in enumerate(rng.random(n_target))}
    return categories, relevance, target, float(rng.uniform(0.1, 0.9))


def test_calibrate_matches_a_from_scratch_greedy():
    """The incremental KL in ``calibrate`` picks exactly what recomputing KL(p || q) for every candidate does."""
    from core.ranking.rerank import calibrate, calibration_kl

    rng = np.random.default_rng(3)
    for trial in range(20):
        k = 8
        categories, relevance, target, lam = random_calibration(rng, n=40, n_categories=6, n_target=4)
        order = list(np.argsort(-relevance))
        total = sum(target.values())
        p = {c: w / total for c, w in target.items()}
        rel = relevance / relevance[order[: 4 * k]].max()
        chosen = []
        for _ in range(k):
            best, best_gain = None, -np.inf
            for i in order[: 4 * k]:
                if i in chosen:
                    continue
                mix = [categories[j] for j in [*chosen, i]]
                q = {c: mix.count(c) / len(mix) for c in set(mix)}
                gain = (1 - lam) * sum(rel[j] for j in [*chosen, i]) - lam * calibration_kl(p, q, 0.01)
                if gain > best_gain + 1e-12:
                    best, best_gain = i, gain
            chosen.append(best)
        got = calibrate(order, relevance, categories, target, k, lam)[:k]
        assert got == [int(i) for i in chosen], trial


def test_calibrate_keeping_the_order_chooses_the_same_items_in_the_given_order():
    """``keep_order``: the greedy's k items (its objective is one of the set), ranked as ``order`` ranks them."""
    from core.ranking.rerank import calibrate

    rng = np.random.default_rng(5)
    for trial in range(20):
        k = 10
        categories, relevance, target, lam = random_calibration(rng, n=60, n_categories=5, n_target=5)
        order = [int(i) for i in rng.permutation(60)]  # not the relevance order: a re-ranker came first
        for every_category in (False, True):
            greedy = calibrate(order, relevance, categories, target, k, lam, every_category)
            kept = calibrate(order, relevance, categories, target, k, lam, every_category, keep_order=True)
            assert set(kept[:k]) == set(greedy[:k]), trial
            assert kept[:k] == [i for i in order if i in set(greedy[:k])], trial
            assert kept[k:] == greedy[k:], trial


def calibrated_low_category(every_category: bool) -> list[str]:
    """k = 4 from 40 items, the first 36 of category a and the last 4 of b; the shopper's mix is half b."""
    from core.ranking.rerank import calibrate

    categories = np.array(["a"] * 36 + ["b"] * 4, dtype=object)
    relevance = np.linspace(1.0, 0.5, 40)
    order = list(range(40))
    chosen = calibrate(order, relevance, categories, {"a": 0.5, "b": 0.5}, 4, 0.9, every_category)[:4]
    return sorted(categories[chosen].tolist())


def test_calibration_from_the_best_4k_cannot_reach_a_low_category():
    assert calibrated_low_category(every_category=False) == ["a", "a", "a", "a"]


def test_calibration_from_every_category_gives_a_low_category_its_share():
    assert calibrated_low_category(every_category=True) == ["a", "a", "b", "b"]
