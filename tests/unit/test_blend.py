"""The blend: one Recommender whose parts add up, weights learned on validation, popularity for cold users."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from models.base import EvalSet, ItemSide, SequenceData
from models.baselines import ItemKNN, MostPop
from models.blend import Blend, log_probs, part_kind
from models.data import leave_one_out, left_pad
from models.metrics import validation_metrics
from models.registry import build, load_model, save_model
from models.transformer import TransformerConfig

N = 20


def cycle_data(n_seq: int = 200, length: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Item i is always followed by i % N + 1."""
    rng = np.random.default_rng(seed)
    return [((s - 1 + np.arange(length)) % N) + 1 for s in rng.integers(1, N + 1, n_seq)]


@pytest.fixture(scope="module")
def fitted() -> tuple[Blend, object]:
    torch.set_num_threads(1)
    split = leave_one_out(SequenceData(cycle_data(), n_items=N), max_len=10)
    config = TransformerConfig(dim=16, max_len=10, max_epochs=3, dropout=0.0, batch_size=32, lr=1e-2)
    blend = build("blend", N, config=config, data=split.train).fit(split.train, split.valid)
    return blend, split


def test_parts_add_up_to_the_score(fitted):
    blend, _ = fitted
    h = left_pad([[1, 2, 3], [7]], 10)
    parts = blend.score_parts(h)
    assert set(parts) == {n for n, w in blend.weights.items() if w}
    torch.testing.assert_close(sum(parts.values())[:, 1:], blend.score(h)[:, 1:])


def test_blend_is_at_least_its_best_part_on_validation(fitted):
    blend, split = fitted
    best_part = max(validation_metrics(p, split.valid)["ndcg@10"] for p in blend.parts.values())
    assert validation_metrics(blend, split.valid)["ndcg@10"] >= best_part - 1e-9


def test_cold_user_gets_popularity(fitted):
    blend, _ = fitted
    cold = blend.score(left_pad([[]], 10))
    pop = log_probs("mostpop", blend.parts["mostpop"].score(left_pad([[]], 10)))
    assert torch.equal(
        torch.argsort(cold[0, 1:], descending=True), torch.argsort(pop[0, 1:], descending=True)
    )


def test_weights_come_from_validation_only(fitted):
    """Validation targets that popularity alone predicts (the most frequent item, against the cycle) pull the
    weights toward popularity; the training data is the same."""
    blend, split = fitted
    popular = int(torch.argmax(blend.parts["mostpop"].pop[1:])) + 1
    skewed = type(split.valid)(split.valid.histories, torch.full_like(split.valid.targets, popular))
    before = dict(blend.weights)
    try:
        weights = blend.learn_weights(skewed)
        assert weights["mostpop"] > before["mostpop"]
    finally:
        blend.weights = before


def test_round_trip_and_new_items(fitted, tmp_path):
    blend, _ = fitted
    save_model(blend, tmp_path / "blend")
    loaded = load_model(tmp_path / "blend")
    h = left_pad([[1, 2, 3]], 10)
    assert torch.equal(loaded.score(h), blend.score(h))
    assert loaded.weights == blend.weights
    side = ItemSide()
    loaded.add_items(2, side)
    s = loaded.score(h)
    assert s.shape == (1, N + 3)
    assert torch.isfinite(s[0, 1:]).all()


def test_unknown_part_is_refused():
    with pytest.raises(ValueError, match="parts are named from"):
        Blend({"gpt": build("mostpop", N)})


def test_learned_weights_combine_parts_that_complement_each_other():
    """Half of the validation targets are the successor (item-kNN knows it), half the most popular item
    (popularity knows it): only a mix of both ranks every target near the top."""
    rng = np.random.default_rng(1)
    seqs = [np.array([s, s + 1, s + 2]) for s in rng.integers(2, N - 1, 300)]
    seqs += [np.array([1, 1 + k % 3]) for k in range(600)]  # item 1 is by far the most frequent
    data = SequenceData(
        [np.concatenate([s, [1]]) if i % 3 == 0 else s for i, s in enumerate(seqs)], n_items=N
    )
    parts = {"itemknn": ItemKNN(tune=False).fit(data), "mostpop": MostPop().fit(data)}
    histories = left_pad([[5, 6]] * 10 + [[9, 10]] * 10, 4)
    targets = torch.tensor([7] * 10 + [1] * 10)
    valid = EvalSet(histories, targets)
    blend = Blend(parts)
    weights = blend.learn_weights(valid)
    assert weights["itemknn"] > 0
    assert weights["mostpop"] > 0
    alone = max(validation_metrics(p, valid)["ndcg@10"] for p in parts.values())
    assert validation_metrics(blend, valid)["ndcg@10"] > alone + 0.1


def test_part_lifts_add_up_and_the_sentence_names_each_part(fitted):
    from core.insight.explain import part_lifts
    from core.insight.explain_text import parts_sentence

    blend, _ = fitted
    blend = Blend(blend.parts, {"transformer": 1.0, "itemknn": 0.5, "mostpop": 0.2})
    h = left_pad([[1, 2, 3]], 10)
    lifts = part_lifts(blend, h, 4)  # the cycle's next item
    row = blend.score(h)[0]
    assert set(lifts) == {"transformer", "itemknn", "mostpop"}
    assert sum(lifts.values()) == pytest.approx(float(row[4] - row[1:].mean()), rel=1e-4)
    text = parts_sentence(lifts)
    up = [p for p, v in lifts.items() if v > 0]
    assert up and text.startswith("Of the lift that puts this item above an average item")
    shares = [int(s) for s in re.findall(r"(\d+)%", text)]
    assert len(shares) == len(up) and abs(sum(shares) - 100) <= len(up)
    assert parts_sentence({"transformer": 2.0}) is None  # one part: nothing to split


def test_a_part_that_lowers_the_item_is_named_apart():
    from core.insight.explain_text import parts_sentence

    text = parts_sentence({"transformer": 3.0, "itemknn": 1.0, "mostpop": -0.5})
    assert "the transformer 75%" in text and "item-kNN (items viewed or bought together) 25%" in text
    assert text.endswith("popularity held it back (-0.50).")
    assert parts_sentence({"lstm": -1.0, "mostpop": -0.2}).startswith("No part of the blend")
    assert "the transformer (seed 2) 25%" in parts_sentence({"transformer": 3.0, "transformer-2": 1.0})


def test_the_blend_sums_seeds_of_its_neural_part_and_keeps_them_through_a_round_trip(fitted, tmp_path):
    from models.registry import BLEND_NEURAL, BLEND_SEEDS

    blend, _ = fitted
    seeds = [n for n in blend.parts if part_kind(n) == BLEND_NEURAL]
    assert len(seeds) == BLEND_SEEDS >= 2
    assert len({blend.parts[n].config.seed for n in seeds}) == BLEND_SEEDS  # each its own seed
    h = left_pad([[1, 2, 3]], 10)
    first, second = (blend.parts[n].score(h) for n in seeds[:2])
    assert not torch.equal(first, second)  # trained apart, so their errors differ
    save_model(blend, tmp_path / "seeds")
    assert set(load_model(tmp_path / "seeds").parts) == set(blend.parts)


def test_the_counts_fit_first_and_the_neural_parts_share_what_is_left(fitted, monkeypatch):
    blend, split = fitted
    calls = []
    for name, part in blend.parts.items():
        monkeypatch.setattr(part, "fit", lambda *a, _n=name, _p=part, time_budget_s=None, **k: calls.append((_n, time_budget_s)) or _p)  # fmt: skip
    Blend(dict(blend.parts), dict(blend.weights)).fit(split.train, None, time_budget_s=100.0)
    names = [n for n, _ in calls]
    neural = [n for n in names if part_kind(n) == "transformer"]
    assert names == [n for n in names if n not in neural] + neural and len(neural) == 3
    budgets = dict(calls)
    assert budgets[neural[0]] == pytest.approx(100 / 3, abs=1.0)  # a third of what is left for three
    assert budgets[neural[1]] == pytest.approx(50.0, abs=1.0)  # half of what is left for two
    assert budgets[neural[2]] == pytest.approx(100.0, abs=1.0)  # the whole rest for the last


def test_every_part_kind_has_a_run_label_and_a_merchandisers_name():
    from core.insight.explain_text import PART_NAMES, parts_sentence
    from core.training import PART_LABELS
    from models.blend import PART_CLASSES

    assert set(PART_LABELS) == set(PART_NAMES) == set(PART_CLASSES)
    assert "EASE (items the same shoppers chose) 40%" in parts_sentence({"transformer": 0.6, "ease": 0.4})


def test_recounted_counts_every_step_with_the_settings_chosen_on_validation():
    """An item pair that only the validation steps hold: the fit cannot know it, the recounted model does; the
    settings chosen on validation stay, the seconds add up, and the fitted model is left as it was."""
    rng = np.random.default_rng(3)
    seqs = [rng.permutation(np.arange(1, 11))[:6] for _ in range(150)]
    seqs = [np.concatenate([s[:5], [19, 20], s[5:]]) for s in seqs]  # 19 → 20 only in the last three steps
    split = leave_one_out(SequenceData(seqs, n_items=N), max_len=10, test=True)
    every = leave_one_out(SequenceData(seqs, n_items=N), max_len=10, test=False).train
    knn = ItemKNN().fit(split.train, split.valid)
    history = left_pad([np.array([3, 19])], 10)
    before = knn.score(history)
    assert before[0, 20] < 1e-3  # 20 is never a training step: the tie-break's floor at most
    recounted = knn.recounted(every)
    assert recounted.config_dict() == knn.config_dict()
    assert recounted.train_seconds >= knn.train_seconds
    torch.testing.assert_close(
        recounted.score(history), ItemKNN(**knn.config_dict()).fit(every).score(history)
    )
    assert int(recounted.score(history)[0, 1:].argmax()) + 1 == 20
    assert torch.equal(knn.score(history), before)


def test_a_recounted_blend_keeps_its_weights_and_shares_its_neural_parts(fitted):
    blend, split = fitted
    before = blend.score(split.valid.histories)
    every = SequenceData([s[::-1].copy() for s in cycle_data(seed=5)], n_items=N)  # the cycle backwards
    recounted = blend.recounted(every)
    assert recounted.weights == blend.weights and recounted.weights is not blend.weights
    assert torch.equal(blend.score(split.valid.histories), before)  # the fitted blend is unchanged
    counted = [n for n, p in blend.parts.items() if p.recounts]
    assert counted and len(counted) < len(blend.parts)
    for name, part in blend.parts.items():
        if not part.recounts:
            assert recounted.parts[name] is part
            continue
        fresh = type(part)(**part.config_dict()).fit(every)  # no validation split: nothing tuned
        torch.testing.assert_close(
            recounted.parts[name].score(split.valid.histories), fresh.score(split.valid.histories)
        )
