"""SHAP explanations: additivity, padding, a known driver, brute-force Shapley, determinism, batching."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn as nn

from core.errors import InputError
from core.insight.explain import (
    EXACT_MAX_FEATURES,
    Explanation,
    FeatureAttribution,
    explain_homepage,
    explain_item,
    global_importance,
    rules_effect,
    sentence,
    waterfall_data,
)
from models.base import EVENT_TYPES, Histories, Recommender

N_ITEMS = 60


class TinyLSTM(nn.Module, Recommender):
    """Embedding (+ event type + gap) -> LSTM -> dot product with the item table: real structure, small."""

    name = "tiny-lstm"

    def __init__(self, n_items=N_ITEMS, dim=16, n_gaps=8, max_len=64, seed=0, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(seed)
        self.n_items, self.max_len = n_items, max_len
        self.reads_gaps = bool(n_gaps)
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.event = nn.Embedding(len(EVENT_TYPES) + 1, dim, padding_idx=0)
        self.gap = nn.Embedding(n_gaps, dim, padding_idx=0) if n_gaps else None
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.bias = nn.Parameter(torch.randn(n_items + 1) * 0.1)
        self.to(dtype)
        self.eval()

    @torch.no_grad()
    def score(self, h: Histories) -> torch.Tensor:
        items = h.items.long()[:, -self.max_len :]
        x = self.item(items)
        if h.event_types is not None:
            x = x + self.event(h.event_types.long()[:, -self.max_len :])
        if self.gap is not None and h.gaps is not None:
            x = x + self.gap(h.gaps.long()[:, -self.max_len :])
        out, _ = self.lstm(x)
        s = out[:, -1] @ self.item.weight.t() + self.bias
        s[:, 0] = float("-inf")
        return s


class OnePosition(nn.Module, Recommender):
    """score(item) = 3 * [history[t] == trigger] for the target, plus a tiny dependence on everything else."""

    def __init__(self, t: int, trigger: int, target: int, n_items=N_ITEMS):
        super().__init__()
        self.n_items, self.t, self.trigger, self.target = n_items, t, trigger, target

    def score(self, h: Histories) -> torch.Tensor:
        s = torch.zeros(h.items.shape[0], self.n_items + 1, dtype=torch.float64)
        s[:, self.target] = (
            3.0 * (h.items[:, self.t] == self.trigger).double() + 0.01 * (h.items != 0).sum(1).double()
        )
        s[:, 0] = float("-inf")
        return s


class ContextModel(TinyLSTM):
    """TinyLSTM whose scores also shift with a 'segment' context value (models that take context)."""

    context_features = ("segment",)

    def score_with_context(self, h: Histories, ctx: dict[str, torch.Tensor]) -> torch.Tensor:
        s = self.score(h)
        return s + ctx["segment"].to(s.dtype).unsqueeze(1) * self.bias.unsqueeze(0)


def history(
    n_events: int, T: int | None = None, seed: int = 0, gaps: bool = True, n_items=N_ITEMS
) -> Histories:
    T = T or n_events
    g = torch.Generator().manual_seed(seed)
    items = torch.zeros(1, T, dtype=torch.long)
    ev = torch.zeros(1, T, dtype=torch.long)
    gp = torch.zeros(1, T, dtype=torch.long)
    items[0, T - n_events :] = torch.randint(1, n_items + 1, (n_events,), generator=g)
    ev[0, T - n_events :] = torch.randint(1, len(EVENT_TYPES) + 1, (n_events,), generator=g)
    gp[0, T - n_events :] = torch.randint(1, 8, (n_events,), generator=g)
    return Histories(items, ev, gp if gaps else None)


def counting(model):
    calls = {"n": 0, "rows": 0}
    inner = model.score

    def score(h):
        calls["n"] += 1
        calls["rows"] += h.items.shape[0]
        return inner(h)

    model.score = score
    return calls


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny batches on a shared 2-core box: OpenMP threads only spin against each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    return TinyLSTM()


# ---------------------------------------------------------------- guarantees


@pytest.mark.parametrize("n_events,T,seed", [(4, 10, 0), (7, 8, 1), (11, 20, 2)])
def test_exact_additivity(model, n_events, T, seed):
    h = history(n_events, T, seed)
    item = int(torch.randint(1, N_ITEMS + 1, (1,), generator=torch.Generator().manual_seed(seed)))
    auto = "exact" if n_events + 1 <= EXACT_MAX_FEATURES else "permutation"
    assert explain_item(model, h, item).method == auto
    e = explain_item(model, h, item, method="exact")
    assert len(e.players()) == n_events + 1  # events + the gap feature
    direct = float(model.score(h)[0, item])
    assert e.score == pytest.approx(direct, abs=1e-6)
    assert abs(e.base_value + sum(f.value for f in e.features) - direct) < 1e-4
    assert e.check_additivity()


@pytest.mark.parametrize("seed", [0, 3])
def test_permutation_additivity_and_padding(model, seed):
    h = history(30, 40, seed)
    e = explain_item(model, h, 7, seed=seed)
    assert e.method == "permutation"
    assert len(e.players()) == 31
    assert abs(e.base_value + sum(f.value for f in e.features) - float(model.score(h)[0, 7])) < 1e-4
    pads = [f for f in e.features if f.kind == "event" and f.item_index == 0]
    assert len(pads) == 10 and all(f.is_padding and abs(f.value) <= 1e-9 for f in pads)
    assert [f.position for f in e.features if f.kind == "event"] == list(range(40))


def test_padding_zero_exact(model):
    e = explain_item(model, history(5, 12, 4, gaps=False), 3)
    assert len(e.players()) == 5 and e.method == "exact"
    assert all(f.value == 0.0 for f in e.features if f.item_index == 0)


def test_known_driver_gets_largest_attribution():
    h = history(8, 10, 5, gaps=False)
    t, trigger = 6, int(h.items[0, 6])
    m = OnePosition(t, trigger, target=9)
    e = explain_item(m, h, 9)
    top = e.top(1)[0]
    assert top.position == t and top.item_index == trigger
    assert top.value == pytest.approx(3.0 + 0.01, abs=1e-9)
    assert all(abs(f.value - 0.01) < 1e-9 for f in e.players() if f.position != t)


def brute_force_shapley(model, h: Histories, item: int) -> tuple[np.ndarray, float]:
    """Enumerate every coalition with the same masker: a masked event -> padding (item 0, type 0, gap 0)."""
    pos = torch.nonzero(h.items[0] != 0).flatten().tolist()
    F = len(pos)
    value = {}
    for bits in itertools.product([0, 1], repeat=F):
        keep = torch.ones_like(h.items, dtype=torch.bool)
        for b, p in zip(bits, pos, strict=True):
            keep[0, p] = bool(b)
        masked = Histories(h.items * keep, h.event_types * keep, None)
        value[bits] = float(model.score(masked)[0, item])
    phi = np.zeros(F)
    for j in range(F):
        for bits, v in value.items():
            if bits[j]:
                continue
            s = sum(bits)
            w = math.factorial(s) * math.factorial(F - s - 1) / math.factorial(F)
            with_j = bits[:j] + (1,) + bits[j + 1 :]
            phi[j] += w * (value[with_j] - v)
    return phi, value[(0,) * F]


def test_exact_matches_brute_force_shapley():
    m = TinyLSTM(dtype=torch.float64, seed=3)
    h = history(6, 9, 6, gaps=False)
    phi, empty = brute_force_shapley(m, h, 11)
    e = explain_item(m, h, 11, method="exact")
    got = np.array([f.value for f in e.players()])
    np.testing.assert_allclose(got, phi, atol=1e-6)
    assert e.base_value == pytest.approx(empty, abs=1e-6)
    # permutation with 6 features: additivity exact, values close to the truth
    p = explain_item(m, h, 11, method="permutation", max_evals=2000)
    np.testing.assert_allclose([f.value for f in p.players()], phi, atol=0.05 * max(1e-3, np.abs(phi).max()))


def test_determinism(model):
    h = history(25, 30, 7)
    a = explain_item(model, h, 5, seed=1)
    b = explain_item(model, h, 5, seed=1)
    assert [f.value for f in a.features] == [f.value for f in b.features]
    state = np.random.get_state()[1].copy()
    explain_item(model, h, 5, seed=2)
    assert (np.random.get_state()[1] == state).all()  # the global RNG is left alone


def test_batched_forward_calls():
    m = TinyLSTM()
    calls = counting(m)
    e = explain_item(m, history(9, 12, 8), 4, method="exact")  # 10 features: 1024 coalitions
    assert e.method == "exact" and e.n_evals >= 1024
    assert calls["n"] <= 2 and e.n_model_calls == calls["n"]
    calls["n"] = 0
    e = explain_item(m, history(30, 30, 9), 4)  # permutation: one call per permutation
    assert e.method == "permutation" and e.n_evals >= 500
    assert calls["n"] <= 2 and e.n_model_calls == calls["n"]  # all permutations: one pass


def test_window_and_context():
    m = ContextModel(max_len=5)
    h = history(8, 10, 10)
    e = explain_item(m, h, 2, context={"segment": 2.0}, baseline_context={"segment": 0.0})
    ev = [f for f in e.players() if f.kind == "event"]
    assert [f.position for f in ev] == [5, 6, 7, 8, 9]  # only the model's window
    assert {f.name for f in e.players() if f.kind == "context"} == {"time since last visit", "segment"}
    assert all(f.value == 0.0 for f in e.features if f.kind == "event" and not f.in_window)
    assert e.check_additivity()
    with pytest.raises(InputError):
        explain_item(TinyLSTM(), h, 2, context={"segment": 1.0})
    with pytest.raises(InputError):
        explain_item(m, Histories(torch.ones(2, 3, dtype=torch.long)), 2)


def test_presence_masker_delta_masks():
    from shap.utils import MaskedModel

    from core.insight.shapley import PresenceMasker

    noop = MaskedModel.delta_mask_noop_value
    # rows: nothing | flip 0 | flip 2 | flip 0 and 1 (-0-1 = "flip 0, keep going") | noop
    (rows,), varying = PresenceMasker(3)(np.array([noop, 0, 2, -1, 1, noop]), np.ones(3))
    np.testing.assert_array_equal(rows, [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 1]])
    assert varying.ravel().tolist() == [True, True, True, True, False]


def test_empty_history(model):
    e = explain_item(model, Histories(torch.zeros(1, 6, dtype=torch.long)), 3)
    assert e.method == "none" and e.players() == [] and e.check_additivity()


# ---------------------------------------------------------------- frames, text, aggregates


def test_frame_top_and_waterfall(model):
    h = history(20, 24, 11)
    e = explain_item(model, h, 8)
    f = e.to_frame()
    assert (
        isinstance(f, pl.DataFrame)
        and f.height == 25
        and f["value"].sum() == pytest.approx(e.score - e.base_value, abs=1e-4)
    )
    top = e.top(3)
    assert len(top) == 3 and abs(top[0].value) >= abs(top[1].value) >= abs(top[2].value)
    rows = waterfall_data(e, {p: "same label" for p in range(24)}, max_features=8)
    assert rows[0]["value"] == e.base_value and rows[-1]["label"] == "model score"
    assert len(rows) == 1 + 8 + 1 + 1 and rows[-2]["label"] == "13 other features"
    assert rows[-2]["cumulative"] == pytest.approx(e.score, abs=1e-4)
    labels = [r["label"] for r in rows]
    assert len(set(labels)) == len(labels)


def _fa(pos, item, ev, value):
    return FeatureAttribution(f"e{pos}", "event", pos, item, ev, value)


def test_sentence_groups_categories():
    feats = [
        _fa(0, 0, 0, 0.0),
        _fa(1, 11, EVENT_TYPES["view"], 0.3),
        _fa(2, 12, EVENT_TYPES["view"], 0.25),
        _fa(3, 13, EVENT_TYPES["view"], 0.2),
        _fa(4, 20, EVENT_TYPES["add_to_cart"], 1.2),
        _fa(5, 30, EVENT_TYPES["purchase"], -0.4),
    ]
    feats[0].in_window = False
    e = Explanation(20, 2.0, 0.45, feats, "exact", 32, 0.01)
    s = sentence(
        e,
        {20: "Bluetooth headphones", 11: "Case A"},
        ["3 days ago", "2 days ago", "1 day ago", "2 days ago", "5 min ago"],
        {
            11: "electronics.phone_cases",
            12: "electronics.phone_cases",
            13: "electronics.phone_cases",
            20: "electronics.audio.headphones",
            30: "books",
        },
    )
    assert s == (
        "Recommended mainly because you added Bluetooth headphones to your cart 2 days ago "
        "and viewed 3 phone cases"
    )
    negative = Explanation(1, -1.0, 0.0, [_fa(0, 5, 1, -1.0)], "exact", 2, 0.0)
    assert "nothing in your recent history" in sentence(negative, {})


def test_rules_effect_reads_the_codes():
    from core.ranking.kinds.boost import Code as Boost
    from core.ranking.kinds.fairness import Code as Fair
    from core.ranking.kinds.pin import Code as Pin
    from core.ranking.reasons import MODEL, Reason

    boosted = Reason(Boost.BOOSTED, "sale", {"factor": 1.5})
    assert rules_effect([MODEL, boosted], 5, 3) == (
        "The model ranked it #5; the rules moved it up to slot 3: boosted ×1.5 by rule sale."
    )
    pinned = Reason(Pin.PINNED, "p1", {"slot": 1})
    assert rules_effect([pinned], 17, 1) == (
        "The model ranked it #17; pinned to slot 1 by a merchandiser (rule p1)."
    )
    assert rules_effect([MODEL], 4, 4) == "The model ranked it #4 and the rules left it there (slot 4)."
    assert "moved other items" in rules_effect([MODEL], 6, 4)
    assert "fairness" in rules_effect([Reason(Fair.SWAP, "f")], None, 9)


def test_a_pinned_slot_says_it_was_pinned_before_what_the_model_saw():
    from core.insight.explain_text import drivers, slot_sentence
    from core.ranking.kinds.pin import Code as Pin
    from core.ranking.reasons import MODEL, Reason

    e = Explanation(20, 2.0, 0.45, [_fa(1, 20, EVENT_TYPES["view"], 1.0)], "exact", 2, 0.01)
    why = drivers(e, {20: "Blue kettle"})
    pinned = slot_sentence([Reason(Pin.PINNED, "p1", {"slot": 2})], 2, why)
    assert pinned.startswith("Shown in slot 2 because it was pinned to slot 2 by a merchandiser (rule p1)")
    assert "not because of the model" in pinned
    assert not pinned.startswith("Recommended mainly because")
    assert slot_sentence([MODEL], 2, why) == "Recommended mainly because you viewed Blue kettle"


def test_homepage_and_global(model):
    h = history(7, 10, 12)
    frame = explain_homepage(model, h, [3, 4, 5, 6])
    assert frame.height == 8 and frame["n_items"][0] == 4
    assert frame["share"].sum() == pytest.approx(1.0)
    singles = [explain_item(model, h, i) for i in (3, 4, 5, 6)]
    by_name = {r["name"]: r["attribution"] for r in frame.iter_rows(named=True)}
    for f in singles[0].players():
        assert by_name[f.name] == pytest.approx(
            sum(
                s_.features[i].value
                for s_ in singles
                for i in range(len(s_.features))
                if s_.features[i].name == f.name
            ),
            abs=1e-5,
        )

    batch = Histories(
        *(
            torch.cat([getattr(history(n, 12, 20 + n), k) for n in (0, 3, 5, 8, 12)])
            for k in ("items", "event_types", "gaps")
        )
    )
    cats = np.array(["none"] + [f"cat{i % 3}" for i in range(1, N_ITEMS + 1)], dtype=object)
    target = np.zeros(N_ITEMS + 1, dtype=bool)
    target[[2, 5, 8]] = True
    out = global_importance(model, batch, target, cats, n_users=3, seed=0)
    assert set(out) == {"category", "event type", "context"}
    assert out["category"].columns[:2] == ["category", "attribution"]
    assert set(out["category"]["category"]) <= {"cat0", "cat1", "cat2"}
    assert out["event type"]["n_events"].sum() == out["category"]["n_events"].sum()


def test_real_lstm():
    from models.lstm import LSTMConfig, LSTMRecommender

    cfg = LSTMConfig(n_items=N_ITEMS, dim=32, max_len=20, n_gap_buckets=8)
    m = LSTMRecommender(cfg)
    h = history(25, 30, 13)
    calls = counting(m)
    e = explain_item(m, h, 10)
    assert e.method == "permutation" and len(e.players()) == 21  # 20 in the window + gaps
    assert e.check_additivity() and calls["n"] <= 2
    assert all(f.value == 0.0 for f in e.features if not f.in_window)
    small = explain_item(m, history(6, 30, 14), 10)
    assert small.method == "exact" and small.check_additivity()


def test_prefetched_permutation_equals_plain_shap(model):
    import shap

    from core.insight.shapley import PresenceMasker, make_game, shapley_values

    h = history(20, 24, 15)
    game = make_game(model, h, np.array([12]), None, None)
    values, base, method = shapley_values(game, "permutation", "auto", seed=4)
    F = game.n_features
    plain = shap.Explainer(game, PresenceMasker(F), algorithm="permutation", seed=4)(
        np.ones((1, F)), max_evals="auto", silent=True
    )
    assert method == "permutation" and game.n_calls == 2 + 9  # reference + one prefetched pass; plain: 9
    np.testing.assert_allclose(values, plain.values[0].reshape(F, 1), atol=1e-9)
    np.testing.assert_allclose(base, np.ravel(plain.base_values[0]), atol=1e-9)
