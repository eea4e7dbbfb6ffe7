"""Models: the LSTM and the transformer learn, mask, round-trip, take new items and report fine-tune progress;
every model answers the same interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import neural
from models.base import EvalSet, Histories, ItemSide, Progress, Recommender, SequenceData
from models.baselines import ItemKNN, MostPop
from models.data import left_pad
from models.ease import EASE
from models.infer import pick_device, score_users, timed_score
from models.lstm import LSTMConfig, LSTMRecommender
from models.neural import NeuralRecommender
from models.registry import NEURAL, load_model, save_model, sized_config
from models.train import finetune
from models.transformer import TransformerConfig

N = 20


def cycle_data(n_seq: int = 240, length: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Item i is always followed by i % N + 1: a pattern a model must learn exactly."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, N + 1, n_seq)
    return [((s - 1 + np.arange(length)) % N) + 1 for s in starts]


def tiny_config(arch: str = "lstm", **kw) -> LSTMConfig | TransformerConfig:
    no_dropout = {"lstm": dict(emb_dropout=0.0, hidden_dropout=0.0), "transformer": dict(dropout=0.0)}[arch]
    base = dict(
        n_items=N,
        dim=32,
        **no_dropout,
        lr=1e-2,
        weight_decay=0.0,
        batch_size=32,
        max_epochs=25,
        warmup_frac=0.0,
        max_len=10,
        seed=7,
    )
    base.update(kw)
    return NEURAL[arch].config_class(**base)


def fit(config, data: SequenceData, side: ItemSide | None = None, **kw) -> NeuralRecommender:
    cls = LSTMRecommender if isinstance(config, LSTMConfig) else NEURAL["transformer"]
    return cls(config, side).fit(data, **kw)


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def trained(request) -> NeuralRecommender:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds synchronisation on a busy machine
    try:
        return fit(tiny_config(request.param), SequenceData(cycle_data()))
    finally:
        torch.set_num_threads(threads)


def test_overfits_cycle_pattern_hr_at_1(trained):
    hist = left_pad([s[:-1] for s in cycle_data(50, 6, seed=1)], 10)
    targets = torch.tensor([int(s[-1]) for s in cycle_data(50, 6, seed=1)])
    _, idx = trained.top_k(hist, 1)
    assert (idx[:, 0] == targets).float().mean().item() == 1.0


def test_score_shape_and_padding_column(trained):
    s = trained.score(left_pad([[1, 2, 3]], 10))
    assert s.shape == (1, N + 1) and torch.isneginf(s[0, 0]) and torch.isfinite(s[0, 1:]).all()


def test_exclusion_mask_and_history_applied_before_top_k(trained):
    hist = left_pad([[3, 4, 5]], 10)
    exclude = torch.zeros(N + 1, dtype=torch.bool)
    exclude[6] = True  # the item the model would pick
    _, idx = trained.top_k(hist, N - 5, exclude=exclude)
    assert 6 not in idx[0].tolist() and not {3, 4, 5} & set(idx[0].tolist()) and 0 not in idx[0].tolist()
    _, idx2 = score_users(trained, hist, batch_size=1, exclude=exclude, k=N - 5, device="cpu")
    assert 6 not in idx2[0].tolist() and not {3, 4, 5} & set(idx2[0].tolist())


def test_padding_anywhere_and_fully_padded_history(trained):
    a = trained.score(Histories(torch.tensor([[0, 0, 0, 7, 8, 9]])))
    b = trained.score(Histories(torch.tensor([[7, 8, 0, 9]])))  # a hole in the middle = that item absent
    c = trained.score(Histories(torch.tensor([[7, 8, 9]])))
    assert torch.allclose(a, c, atol=1e-5) and torch.allclose(b, c, atol=1e-5)
    # SHAP: masked copies of one history, one forward pass, all finite
    base = torch.tensor([4, 5, 6, 7, 8])
    masks = torch.tensor(
        [[1, 1, 1, 1, 1], [0, 1, 0, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool
    )
    s = trained.score(Histories(base * masks))
    assert s.shape == (4, N + 1) and torch.isfinite(s[:, 1:]).all()
    assert torch.isfinite(trained.score(Histories(torch.zeros(2, 0, dtype=torch.long)))[:, 1:]).all()


def test_checkpoint_round_trip_identical_scores(trained, tmp_path):
    hist = left_pad([s[:-1] for s in cycle_data(30, 7, seed=2)], 10)
    save_model(trained, tmp_path / "run", meta={"note": "test"})
    assert (tmp_path / "run" / "model.pt").exists() and (tmp_path / "run" / "config.json").exists()
    loaded = load_model(tmp_path / "run", device="cpu")
    assert torch.equal(trained.score(hist), loaded.score(hist))
    assert loaded.item_embeddings().shape == (N + 1, trained.config.dim)
    assert loaded.name == trained.name


def test_runs_saved_before_the_shared_item_table_still_load(tmp_path):
    """An LSTM checkpoint from before models.layers.ItemTable (item parameters on the network itself)."""
    trained = fit(tiny_config(max_epochs=1), SequenceData(cycle_data(30)))
    save_model(trained, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    torch.save({k.removeprefix("items."): v for k, v in state.items()}, tmp_path / "run" / "model.pt")
    hist = left_pad([[1, 2, 3]], 10)
    assert torch.equal(load_model(tmp_path / "run").score(hist), trained.score(hist))


def _side(n: int, cats: list[int]) -> ItemSide:
    return ItemSide(
        category=torch.tensor([0] + cats),
        brand=torch.tensor([0] + [1 + i % 2 for i in range(n)]),
        price_bucket=torch.tensor([0] + [1 + i % 3 for i in range(n)]),
        n_categories=5,
        n_brands=3,
        n_price_buckets=4,
    )


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_new_item_gets_finite_score_from_side_features(arch):
    cats = [1 + (i % 4) for i in range(N)]
    model = fit(tiny_config(arch, max_epochs=3), SequenceData(cycle_data(60)), side=_side(N, cats))
    side2 = _side(N + 2, cats + [1, 2])
    model.add_items(2, side2)
    s = model.score(left_pad([[1, 2, 3]], 10))
    assert s.shape == (1, N + 3) and torch.isfinite(s[0, 1:]).all()
    emb = model.item_embeddings()
    assert emb.shape == (N + 3, 32) and not torch.equal(emb[N + 1], emb[N + 2])  # different side features
    torch.testing.assert_close(emb[N + 1], model.net.items.side_table()[N + 1])  # side features alone


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_event_types_and_gaps_are_used(arch):
    cfg = tiny_config(arch, max_epochs=1, n_gap_buckets=8)
    seqs = cycle_data(40)
    data = SequenceData(
        seqs, event_types=[np.full(len(s), 1) for s in seqs], gaps=[np.arange(len(s)) % 8 for s in seqs]
    )
    model = fit(cfg, data)
    h = Histories(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 1, 1]]), torch.tensor([[1, 2, 3]]))
    h2 = Histories(torch.tensor([[1, 2, 3]]), torch.tensor([[5, 5, 5]]), torch.tensor([[1, 2, 3]]))
    h3 = Histories(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 1, 1]]), torch.tensor([[4, 4, 4]]))
    assert not torch.equal(model.score(h), model.score(h2))  # event types change the scores
    assert not torch.equal(model.score(h), model.score(h3))  # and so do time gaps


def test_finetune_reports_stage_and_early_stopping(trained):
    seqs = cycle_data(60, seed=3)
    mask = [np.arange(len(s)) % 2 == 0 for s in seqs]  # only some positions are targets
    valid = EvalSet(left_pad([s[:-1] for s in seqs[:20]], 10), torch.tensor([int(s[-1]) for s in seqs[:20]]))
    seen: list[Progress] = []
    trained.config.progress_every = 1
    tuned = finetune(trained, SequenceData(seqs, target_mask=mask), valid, max_epochs=2, progress=seen.append)
    assert seen and all(p.stage == "finetune" for p in seen)
    assert any(p.metrics.get("ndcg@10") is not None for p in seen)
    assert tuned.history and 0.0 <= seen[-1].fraction <= 1.0


def test_time_budget_and_sampled_softmax_path():
    cfg = tiny_config(max_epochs=50, sampled_softmax_above=5, n_negatives=16)
    model = fit(cfg, SequenceData(cycle_data(60)), time_budget_s=1.0)
    assert model.train_seconds < 30 and all(math.isfinite(h["loss"]) for h in model.history)


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_seeded_training_is_reproducible(arch):
    a = fit(tiny_config(arch, max_epochs=2), SequenceData(cycle_data(60)))
    b = fit(tiny_config(arch, max_epochs=2), SequenceData(cycle_data(60)))
    h = left_pad([[1, 2, 3]], 10)
    assert torch.equal(a.score(h), b.score(h))


@pytest.mark.parametrize(
    "make",
    [
        MostPop,
        ItemKNN,
        EASE,
        lambda: LSTMRecommender(tiny_config(max_epochs=2)),
        lambda: NEURAL["transformer"](tiny_config("transformer", max_epochs=2)),
    ],
)
def test_baselines_share_the_interface(make):
    model = make().fit(SequenceData(cycle_data(80), n_items=N))
    assert isinstance(model, Recommender) and model.n_items == N
    hist = left_pad([[1, 2, 3], [5], []], 10)
    s = model.score(hist)
    assert s.shape == (3, N + 1) and torch.isneginf(s[:, 0]).all() and torch.isfinite(s[:, 1:]).all()
    _, idx = model.top_k(hist, 5)
    assert idx.shape == (3, 5) and not {1, 2, 3} & set(idx[0].tolist())
    _, idx2 = score_users(model, hist, k=5, device="cpu")
    assert idx2.shape == (3, 5)


def test_itemknn_learns_the_successor():
    model = ItemKNN().fit(SequenceData(cycle_data(200), n_items=N))
    _, idx = model.top_k(left_pad([[3, 4, 5]], 10), 1)
    assert idx[0, 0].item() == 6


def test_infer_helpers(trained, monkeypatch):
    from core.config import settings

    monkeypatch.setenv("HS_DEVICE", "cpu")
    assert pick_device(settings().device).type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    name, ms = timed_score(trained, left_pad([[1, 2]], 10))
    assert name == "cpu" and ms >= 0.0


def test_fit_takes_no_unknown_arguments():
    with pytest.raises(TypeError):
        MostPop().fit(SequenceData(cycle_data(10)), n_items=N)
    with pytest.raises(TypeError):
        LSTMRecommender(tiny_config(max_epochs=1)).fit(SequenceData(cycle_data(10)), epochs=3)


def test_data_beyond_the_models_catalog_is_refused():
    with pytest.raises(ValueError, match="25 items"):
        LSTMRecommender(tiny_config()).fit(SequenceData(cycle_data(10), n_items=25))


def test_the_callers_config_is_not_changed():
    config = tiny_config(n_categories=0)
    LSTMRecommender(config, _side(N, [1] * N)).add_items(2)
    assert (config.n_categories, config.n_items) == (0, N)


def test_fused_cross_entropy_matches_torch():
    from models.layers import FullSoftmaxCE

    torch.manual_seed(0)
    logits = torch.randn(7, 50, dtype=torch.float64) * 3
    y = torch.randint(0, 50, (7,))
    ours, ref = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss = FullSoftmaxCE.apply(ours * 1.0, y)  # * 1.0: the function overwrites its input buffer
    loss.backward()
    expected = torch.nn.functional.cross_entropy(ref, y)
    expected.backward()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), abs=1e-12)
    torch.testing.assert_close(ours.grad, ref.grad)


def test_cpu_budget_clock_does_not_count_waiting():
    """On a shared machine the budget can be counted in the process's own CPU time: waiting is not training."""
    import time

    from models.train import clock

    wall, cpu = clock("wall"), clock("cpu")
    w0, c0 = wall(), cpu()
    time.sleep(0.3)
    assert wall() - w0 >= 0.3
    assert cpu() - c0 < 0.1


def test_plan_follows_the_pace_within_the_budget():
    from models.train import Plan

    t = [0.0]
    plan = Plan(max_epochs=100, steps_per_epoch=10, budget_s=100.0, now=lambda: t[0])
    t[0] = 10.0  # the first epoch took 10 s: 10 fit
    assert plan.after_epoch(1)
    assert plan.epochs == 10
    t[0] = 15.0  # the second took 5 s: the average pace (7.5 s) fits more
    assert plan.after_epoch(2)
    assert plan.epochs == 13
    t[0] = 99.0  # nearly out of time: no further epoch fits
    assert not plan.after_epoch(3)
    assert Plan(max_epochs=4, steps_per_epoch=10, budget_s=1e9, now=lambda: t[0]).epochs == 4


@pytest.mark.parametrize("name", sorted(NEURAL))
def test_a_large_batch_scores_as_each_history_alone(name, monkeypatch):
    """Above LENGTH_CHUNK rows a batch runs in chunks of similar length (the padding a transformer would pay
    for); every row still scores as it does alone, whatever the lengths around it."""
    monkeypatch.setattr(neural, "LENGTH_CHUNK", 16)
    cls = NEURAL[name]
    model = cls(cls.config_class(n_items=40, dim=16, max_len=30, seed=3))
    g = torch.Generator().manual_seed(5)
    lengths = torch.randint(1, 31, (70,), generator=g)
    items = torch.zeros(70, 30, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        items[row, 30 - n :] = torch.randint(1, 41, (n,), generator=g)
    batch = model.score(Histories(items))  # (70, 41), in chunks
    alone = torch.cat([model.score(Histories(items[r : r + 1])) for r in range(70)])
    assert torch.allclose(batch[:, 1:], alone[:, 1:], atol=1e-4)
    assert batch.argmax(1).tolist() == alone.argmax(1).tolist()


def test_the_sized_dropout_follows_the_data_per_item_and_the_model():
    """Sparse data (few steps per item) gets more dropout; the transformer, which drops out in more places,
    less than the LSTM there; dense data the same small rate for both. The window covers the sequences."""
    sparse = SequenceData([np.arange(1, 31)] * 10, n_items=1000)  # 300 steps over 1,000 items
    dense = SequenceData([np.arange(1, 31)] * 500, n_items=30)  # 500 steps per item
    lstm, transformer = NEURAL["lstm"], NEURAL["transformer"]
    assert (sized_config(lstm, sparse).emb_dropout, sized_config(lstm, sparse).hidden_dropout) == (0.5, 0.5)
    assert sized_config(transformer, sparse).dropout == 0.3
    assert sized_config(lstm, dense).emb_dropout == sized_config(transformer, dense).dropout == 0.2
    assert sized_config(transformer, sparse).max_len == 30
