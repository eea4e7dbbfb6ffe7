"""EASE: the closed form, its pruning, its tuning on validation, the catalog limit and the round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.base import EvalSet, SequenceData
from models.data import left_pad
from models.ease import EASE
from models.registry import build, load_model, save_model

N = 12


def baskets(n_seq: int = 300, seed: int = 0) -> list[np.ndarray]:
    """Two groups of items bought by the same shoppers in any order: 1–6 and 7–12."""
    rng = np.random.default_rng(seed)
    out = []
    for u in range(n_seq):
        group = np.arange(1, 7) if u % 2 else np.arange(7, 13)
        out.append(rng.permutation(group)[: rng.integers(3, 7)])
    return out


def test_weights_are_the_closed_form_of_the_paper():
    data = SequenceData(baskets(), n_items=N)
    model = EASE(lam=5.0, neighbours=N + 1, tune=False).fit(data)
    x = np.zeros((len(data.items), N + 1))
    for u, s in enumerate(data.items):
        x[u, s] = 1.0
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(N + 1))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    b[0], b[:, 0] = 0.0, 0.0
    dense = model.sim.to_dense().numpy()
    positive = b > 0
    assert np.allclose(dense[positive], b[positive], rtol=1e-4, atol=1e-6)
    assert (dense[~positive] == 0).all()  # negative weights are pruned, the rest kept


def test_a_shopper_gets_the_items_of_their_group_in_any_order():
    model = EASE(tune=False).fit(SequenceData(baskets(), n_items=N))
    _, idx = model.top_k(left_pad([[9, 7], [2]], 10), 4)
    assert set(idx[0].tolist()) <= {8, 10, 11, 12}
    assert set(idx[1].tolist()) <= {1, 3, 4, 5, 6}


def test_neighbours_prune_each_history_item_to_its_strongest():
    model = EASE(neighbours=2, tune=False).fit(SequenceData(baskets(), n_items=N))
    rows = model.sim.crow_indices().diff()
    assert rows.max().item() <= 2 and rows[1:].min().item() >= 1


def test_validation_chooses_lambda_from_its_grid():
    seqs = baskets(400, seed=1)
    train = SequenceData([s[:-1] for s in seqs], n_items=N)
    valid = EvalSet(
        left_pad([s[:-1].tolist() for s in seqs], 10), torch.as_tensor([int(s[-1]) for s in seqs])
    )
    tried, scores = [], []
    real = EASE._validation_ndcg

    def spy(self, sample):
        tried.append(self.pairs[2].sum())  # a different λ gives different weights
        scores.append(real(self, sample))
        return scores[-1]

    model = EASE(lam=1e9)
    model._validation_ndcg = spy.__get__(model)
    model.fit(train, valid)
    assert model.lam in EASE.LAMBDAS and len(set(tried)) == len(EASE.LAMBDAS)
    assert model.config_dict()["lam"] == model.lam
    chosen = EASE(lam=model.lam, tune=False).fit(train)
    assert real(chosen, model._tuning_sample(valid)) == max(scores)  # the best on validation is kept
    assert torch.equal(chosen.score(valid.histories), model.score(valid.histories))


def test_a_history_is_read_as_a_set():
    model = EASE(tune=False).fit(SequenceData(baskets(), n_items=N))
    assert torch.equal(model.score(left_pad([[1, 2, 3]], 10)), model.score(left_pad([[3, 1, 2]], 10)))


def test_a_catalog_beyond_the_limit_is_refused_and_the_blend_leaves_ease_out(monkeypatch):
    monkeypatch.setattr(EASE, "max_items", N - 1)
    with pytest.raises(ValueError, match=f"up to {N - 1} items; this one has {N}"):
        EASE(tune=False).fit(SequenceData(baskets(), n_items=N))
    assert "ease" not in build("blend", N).parts
    monkeypatch.setattr(EASE, "max_items", N)
    assert "ease" in build("blend", N).parts


def test_round_trip_and_new_items(tmp_path):
    model = EASE(tune=False).fit(SequenceData(baskets(), n_items=N))
    h = left_pad([[1, 2], [12]], 10)
    loaded = load_model(save_model(model, tmp_path / "ease"))
    assert isinstance(loaded, EASE) and loaded.config_dict() == model.config_dict()
    assert torch.equal(loaded.score(h), model.score(h))
    loaded.add_items(3)
    s = loaded.score(h)
    assert s.shape == (2, N + 4) and torch.equal(s[:, : N + 1], model.score(h))
    assert (s[:, N + 1 :] == 0).all()
