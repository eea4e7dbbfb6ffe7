"""Every model by name, and the one checkpoint format: build, save, load.

``MODELS``: name → ``Recommender`` class.
``build(name, n_items, *, seed=1337, side=None, config=None, data=None, reuse=None, blend_seeds=BLEND_SEEDS)``
    An untrained model: the neural ones from ``config`` (a copy, with ``n_items`` and ``seed`` set), else their
    defaults sized from ``data`` (``sized_config``); the baselines with theirs; the blend from the fitted
    models in ``reuse`` plus the parts it lacks, out of: ``blend_seeds`` seeds of ``BLEND_NEURAL``
    ("transformer", "transformer-2", …), any other neural model in ``reuse``, item-kNN, EASE (catalogs of up to
    ``EASE.max_items`` items: ``blend_counts``) and popularity.
``save_model(model, directory, meta=None) -> Path``
    ``config.json`` (``{"model": name, "config": ..., "meta": ..., "history": [...], "train_seconds": s}``)
    plus the model's own state files (``model.pt`` for the neural models), written to a temporary folder and
    renamed into place, so a crash never leaves a half-written checkpoint. A round trip gives identical scores.
``load_model(directory, device=None) -> Recommender``
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from models.base import ItemSide, Recommender, SequenceData
from models.baselines import ItemKNN, MostPop
from models.blend import Blend, part_kind, part_seed
from models.ease import EASE
from models.infer import pick_device
from models.layers import NeuralConfig
from models.lstm import LSTMRecommender
from models.neural import NeuralRecommender
from models.transformer import TransformerRecommender

MODELS: dict[str, type[Recommender]] = {
    "lstm": LSTMRecommender,
    "transformer": TransformerRecommender,
    "itemknn": ItemKNN,
    "ease": EASE,
    "mostpop": MostPop,
    "blend": Blend,
}
BLEND_NEURAL = "transformer"  # the blend's neural part when it trains its own (with item-kNN and popularity)
# seeds of BLEND_NEURAL in a blend: the seeds' errors differ, so their sum ranks better than one seed (Beauty,
# validation users held out from the weights: NDCG@10 +1.5 %, HR@10 +2.0 % for a second seed; with EASE in the
# blend, a third seed +1.2 % / +1.4 %; docs/BENCHMARKS.md)
BLEND_SEEDS = 3
DROPOUT_FIELDS = {"lstm": ("emb_dropout", "hidden_dropout"), "transformer": ("dropout",)}
# dropout by data per item: (< 25 steps per item, < 100, more). The transformer's rungs stop at 0.3: it drops
# out the inputs, the attention weights and every block's outputs, so the same rate regularises it more than
# the LSTM's two places. On Beauty (16 steps per item), 0.3 with the 40-epoch schedule reached validation
# NDCG@10 0.066 (0.5: 0.058, 0.2: 0.064); the LSTM at 0.3 overfits (docs/BENCHMARKS.md, issue 15).
DROPOUT_LADDER = {"lstm": (0.5, 0.3, 0.2), "transformer": (0.3, 0.3, 0.2)}


NEURAL: dict[str, type[NeuralRecommender]] = {"lstm": LSTMRecommender, "transformer": TransformerRecommender}


def sized_config(cls: type[NeuralRecommender], data: SequenceData) -> NeuralConfig:
    """A neural model's defaults sized from the data, so that any sequence file trains without hand-set
    hyper-parameters: the window covers 99 % of the sequences, and dropout grows as the data per item shrinks
    (sparse catalogs overfit first). Everything else (epochs, the blend's weights) is chosen on validation."""
    c = cls.config_class()
    lengths = np.array([len(s) for s in data.items]) if len(data.items) else np.zeros(1)
    max_len = int(np.clip(np.ceil(np.percentile(lengths, 99) / 10) * 10, 20, 200))
    steps_per_item = lengths.sum() / max(1, data.n_items)
    sparse, middle, dense = DROPOUT_LADDER[cls.name]
    dropout = sparse if steps_per_item < 25 else middle if steps_per_item < 100 else dense
    sized = {"max_len": max_len}
    for f in DROPOUT_FIELDS[cls.name]:
        sized[f] = dropout
    return dataclasses.replace(c, **sized)


def blend_counts(n_items: int) -> tuple[str, ...]:
    """The blend's count parts besides item-kNN and popularity: EASE where the catalog is small enough to invert
    its item × item matrix (Beauty, validation users held out from the weights: NDCG@10 +2.0 %, HR@10 +1.3 %;
    docs/BENCHMARKS.md)."""
    return ("ease",) if n_items <= EASE.max_items else ()


def build(
    name: str,
    n_items: int,
    *,
    seed: int = 1337,
    side: ItemSide | None = None,
    config: NeuralConfig | None = None,
    data: SequenceData | None = None,
    reuse: dict[str, Recommender] | None = None,
    blend_seeds: int = BLEND_SEEDS,
) -> Recommender:
    """See the module docstring; an unknown name is a ``ValueError`` naming the known ones. ``blend_seeds``:
    how many seeds of ``BLEND_NEURAL`` a blend holds (1 where the budget is too short to train another)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if name == "blend":
        reuse = reuse or {}
        neural = [n for n in NEURAL if n in reuse] or [BLEND_NEURAL]
        seeds = [f"{BLEND_NEURAL}-{k}" for k in range(2, blend_seeds + 1)]  # seed + 1, seed + 2, …
        parts = {
            p: reuse.get(p)
            or build(part_kind(p), n_items, seed=seed + part_seed(p) - 1, side=side, config=config, data=data)
            for p in (BLEND_NEURAL, *neural, *seeds, "itemknn", *blend_counts(n_items), "mostpop")
        }
        blend = Blend(parts)
        blend.fitted = {p for p in parts if p in reuse}
        return blend
    if name not in NEURAL:
        return MODELS[name]()
    cls = NEURAL[name]
    if isinstance(config, cls.config_class):
        base = config
    else:
        base = sized_config(cls, data) if data is not None else cls.config_class()
    return cls(dataclasses.replace(base, n_items=n_items, seed=seed), side)


def save_model(model: Recommender, directory: str | os.PathLike, meta: dict | None = None) -> Path:
    final = Path(directory)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_state(tmp)
    doc = {
        "model": model.name,
        "config": model.config_dict(),
        "meta": meta or {},
        "history": model.training_curve(),
        "train_seconds": model.train_seconds,
    }
    (tmp / "config.json").write_text(json.dumps(doc, indent=2, default=float))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_model(directory: str | os.PathLike, device: str | torch.device | None = None) -> Recommender:
    d = Path(directory)
    doc = json.loads((d / "config.json").read_text())
    if doc.get("model") not in MODELS:
        raise ValueError(f"{d}: unknown model kind {doc.get('model')!r}; known: {', '.join(MODELS)}")
    model = MODELS[doc["model"]].load_state(doc["config"], d)
    model.history = doc.get("history", [])
    model.train_seconds = doc.get("train_seconds") or 0.0
    return model.to(pick_device(device))
