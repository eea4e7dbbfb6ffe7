"""Every model by name, and the one checkpoint format: build, save, load.

``MODELS``: name → ``Recommender`` class.
``build(name, n_items, *, seed=1337, side=None, config=None) -> Recommender``
    An untrained model: the neural ones from ``config`` (a copy, with ``n_items`` and ``seed`` set) or their
    defaults, the baselines with theirs.
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

import torch

from models.base import ItemSide, Recommender
from models.baselines import ItemKNN, MostPop
from models.infer import pick_device
from models.layers import NeuralConfig
from models.lstm import LSTMRecommender
from models.transformer import TransformerRecommender

MODELS: dict[str, type[Recommender]] = {
    "lstm": LSTMRecommender,
    "transformer": TransformerRecommender,
    "itemknn": ItemKNN,
    "mostpop": MostPop,
}


NEURAL = {name: cls for name, cls in MODELS.items() if name in ("lstm", "transformer")}


def build(
    name: str,
    n_items: int,
    *,
    seed: int = 1337,
    side: ItemSide | None = None,
    config: NeuralConfig | None = None,
) -> Recommender:
    """See the module docstring; an unknown name is a ``ValueError`` naming the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if name not in NEURAL:
        return MODELS[name]()
    cls = NEURAL[name]
    base = config if isinstance(config, cls.config_class) else cls.config_class()
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
