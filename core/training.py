"""How a run trains, before it is recorded (``core.model_runs``): the data check, the split, the fine-tuning
slice, pretraining and fine-tuning with progress relayed to the CLI bar and the app's job log.

``check_trainable(seqs)`` raises an ``InputError`` when too few shoppers have enough steps.
``slice_mask(spec, seqs)`` the steps of a fine-tuning slice: ``purchases``, ``recent:7d``, ``category:PATH``.
``split_for_run(seqs, max_len, mask=None)`` train on all but each user's last step, validate on a sample.
``train_model(seqs, architecture, config, epochs, finetune_on, budget, device, relay) -> (model, metrics)``
    the metrics are the validation split's; the model returned has its count parts ``recounted`` on every step
``train_candidates(seqs, budget, device, relay) -> {name: (model, metrics)}``  what first-run compares
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from core.data.sequences import N_GAP_BUCKETS, ShopSequences
from core.errors import InputError
from models.base import EvalSet, Progress, Recommender, SequenceData
from models.baselines import MostPop
from models.blend import Blend, part_kind, part_seed
from models.data import MIN_STEPS, Split, leave_one_out
from models.ease import EASE
from models.layers import NeuralConfig
from models.metrics import validation_metrics
from models.registry import BLEND_NEURAL, BLEND_SEEDS, NEURAL, build, sized_config

ARCHITECTURES = ("lstm", "transformer", "blend")  # what a run can train
ARCHITECTURE_LABELS = {
    "lstm": "LSTM",
    "transformer": "Transformer (SASRec-style)",
    # EASE joins only where the catalog is small enough (``models.registry.blend_counts``); a run's own label
    # (``run_label``) names the parts it really has
    "blend": f"Blend ({BLEND_SEEDS} transformer seeds + item-kNN + EASE up to {EASE.max_items:,} items + popularity)",
}
PART_LABELS = {
    "transformer": "transformer",
    "lstm": "LSTM",
    "itemknn": "item-kNN",
    "ease": "EASE",
    "mostpop": "popularity",
}


def run_label(model: Recommender, kind: str, run_id: str) -> str:
    """'LSTM run …'; a blend is named by the parts it holds ('Blend (transformer + LSTM + item-kNN +
    popularity) run …'), which differ between first-run's blend and one trained on the Model page."""
    if not isinstance(model, Blend):
        return f"{ARCHITECTURE_LABELS.get(kind, kind)} run {run_id}"
    names = [
        PART_LABELS.get(part_kind(n), n) + ("" if part_seed(n) == 1 else f" seed {part_seed(n)}")
        for n in model.parts
    ]
    return f"Blend ({' + '.join(names)}) run {run_id}"


VALID_USERS = 5000  # validation sample, enough for stable NDCG@10 and fast epochs


def slice_mask(spec: str, seqs: ShopSequences) -> list[np.ndarray]:
    """Per-step booleans: which steps belong to the fine-tuning slice.

    ``purchases`` (add-to-cart or purchase steps), ``recent:7d`` (the last 7 days of the
    log), ``category:PATH`` (items under that category path)."""
    kind, _, arg = spec.partition(":")
    if kind == "purchases":
        return [np.isin(ev, (3, 5)) for ev in seqs.event_types]
    if kind == "recent":
        try:
            days = float(arg.rstrip("d"))
        except ValueError:
            raise InputError(
                f"--finetune-on {spec!r}: '{arg}' is not a number of days", fix="e.g. recent:7d"
            ) from None
        latest = max((t[-1] for t in seqs.ts if len(t)), default=0.0)
        return [t >= latest - days * 86_400 for t in seqs.ts]
    if kind == "category":
        if not arg:
            raise InputError(
                f"--finetune-on {spec!r}: no category path", fix="e.g. category:electronics.phones"
            )
        cats = np.array([""] + seqs.catalog.items["category"].fill_null("").to_list(), dtype=object)
        prefix = arg.rstrip(".")
        match = np.array([c == prefix or c.startswith(prefix + ".") for c in cats])
        if not match.any():
            raise InputError(f"--finetune-on {spec!r}: no item has a category under '{prefix}'")
        return [match[s] for s in seqs.items]
    raise InputError(
        f"--finetune-on {spec!r} is not a slice I know", fix="use purchases, recent:7d or category:PATH"
    )


MIN_USERS = 10  # shoppers with MIN_STEPS steps a run needs: fewer cannot be both trained and validated


def check_trainable(seqs: list[np.ndarray], source: str = "the store") -> None:
    """An ``InputError`` naming the cause and the fix when too few users have enough steps to learn from."""
    enough = sum(len(s) >= MIN_STEPS for s in seqs)
    if enough < MIN_USERS:
        raise InputError(
            f"{source} has {enough} shopper(s) with {MIN_STEPS} or more steps; a model needs at least "
            f"{MIN_USERS} to train on and validate against",
            fix="load more events (python -m core ingest FILE), then train again",
        )


def split_for_run(
    seqs: ShopSequences, max_len: int, mask: list[np.ndarray] | None = None, seed: int = 0
) -> Split:
    """Train on every step but each user's last; validate on the last of a sample of users (with ``mask``,
    only users whose last step is in the slice; the training targets are then the slice's steps)."""
    data = SequenceData(seqs.items, seqs.event_types, seqs.gaps, mask, n_items=seqs.catalog.n_items)
    rows = [u for u, s in enumerate(seqs.items) if len(s) >= MIN_STEPS and (mask is None or mask[u][-1])]
    if len(rows) > VALID_USERS:
        rows = sorted(np.random.default_rng(seed).choice(rows, VALID_USERS, replace=False).tolist())
    return leave_one_out(data, max_len, test=False, rows=rows)


def every_step(seqs: ShopSequences) -> SequenceData:
    """Every step of every shopper: what a validated run's count parts count again on before it is stored
    (``Recommender.recounted``), so the homepage it serves counts each shopper's latest step too."""
    return SequenceData(seqs.items, seqs.event_types, seqs.gaps, n_items=seqs.catalog.n_items)


def _metrics(model: Recommender, valid: EvalSet | None) -> dict:
    return {} if valid is None or len(valid) == 0 else validation_metrics(model, valid, ks=(10, 20))


class Relay:
    """Turns the trainer's ``Progress`` into the app's job log and the (fraction, text) progress callback;
    pretraining fills the first ``span`` of the bar, fine-tuning the rest up to 95 %."""

    def __init__(self, progress, on_epoch, span: float):
        self.progress, self.on_epoch, self.span = progress, on_epoch, span

    def part(self, offset: float, span: float):
        def relay(p: Progress) -> None:
            if self.on_epoch:
                self.on_epoch(p)
            if self.progress:
                text = f"{p.stage} epoch {p.epoch} step {p.step}/{p.steps_per_epoch}"
                if p.loss is not None:
                    text += f" loss {p.loss:.3f}"
                if p.metrics:
                    text += " " + " ".join(f"{k} {v:.4f}" for k, v in p.metrics.items())
                self.progress(min(1.0, offset + span * p.fraction), text)

        return relay


def new_model(
    architecture: str, seqs: ShopSequences, config: NeuralConfig | None, epochs: int | None, device
) -> Recommender:
    """An untrained model for the store's catalog, sized from its sequences unless ``config`` is given (a blend:
    the config of its neural part); ``config`` is copied, never changed."""
    if architecture not in ARCHITECTURES:
        raise InputError(
            f"unknown architecture {architecture!r}", fix=f"choose one of {', '.join(ARCHITECTURES)}"
        )
    cls = NEURAL[BLEND_NEURAL if architecture == "blend" else architecture]
    data = SequenceData(seqs.items, n_items=seqs.catalog.n_items)
    base = config if isinstance(config, cls.config_class) else sized_config(cls, data)
    base = dataclasses.replace(base, n_gap_buckets=N_GAP_BUCKETS, max_epochs=epochs or base.max_epochs)
    side = seqs.catalog.side
    return build(architecture, data.n_items, seed=base.seed, side=side, config=base).to(device)


def train_model(
    seqs: ShopSequences, architecture: str, config, epochs, finetune_on, budget, device, relay: Relay
) -> tuple[Recommender, dict]:
    """Pretrain (and fine-tune on a slice) a new model; returns it and its validation metrics."""
    started = time.perf_counter()
    model = new_model(architecture, seqs, config, epochs, device)
    mask = slice_mask(finetune_on, seqs) if finetune_on else None  # a bad slice fails before any training
    if finetune_on and not model.can_finetune:
        raise InputError(f"a {architecture} run cannot be fine-tuned", fix="train it without --finetune-on")
    split = split_for_run(seqs, model.max_len)
    pre_budget = budget * (0.7 if finetune_on else 1.0) if budget else None
    model.fit(split.train, split.valid, time_budget_s=pre_budget, progress=relay.part(0.0, relay.span))
    metrics: dict = {"valid": _metrics(model, split.valid)}
    if finetune_on:
        ft = split_for_run(seqs, model.max_len, mask)
        if ft.valid is None:
            raise InputError(f"--finetune-on {finetune_on}: no user's latest step is in that slice")
        metrics.update(slice=finetune_on, slice_pretrained=_metrics(model, ft.valid))
        remaining = max(10.0, budget - (time.perf_counter() - started)) if budget else None
        model.finetune(
            ft.train, ft.valid, time_budget_s=remaining, progress=relay.part(relay.span, 0.95 - relay.span)
        )
        metrics["slice_finetuned"] = _metrics(model, ft.valid)
    metrics["mostpop"] = _metrics(MostPop().fit(split.train), split.valid)
    return model.recounted(every_step(seqs)), metrics


def train_candidates(seqs: ShopSequences, budget: float | None, device, relay: Relay) -> dict[str, tuple]:
    """What first-run compares: a transformer and an LSTM (40 % of the budget each) and their blend with
    item-kNN, EASE and popularity (the counts' settings and the weights learned on validation in the rest; no second
    transformer seed, which would not fit), all on the same split. Returns name → (model, metrics)."""
    out, fitted, started = {}, {}, time.perf_counter()
    for i, arch in enumerate(("transformer", "lstm")):
        model = new_model(arch, seqs, None, None, device)
        split = split_for_run(seqs, model.max_len)
        share = 0.4 * budget if budget else None
        model.fit(split.train, split.valid, time_budget_s=share, progress=relay.part(0.45 * i, 0.45))
        fitted[arch] = model
    split = split_for_run(seqs, max(m.max_len for m in fitted.values()))
    left = max(10.0, budget - (time.perf_counter() - started)) if budget else None
    # the LSTM is the blend's second neural model here: a second transformer seed would not fit the budget
    blend = build("blend", seqs.catalog.n_items, reuse=fitted, blend_seeds=1).fit(
        split.train, split.valid, time_budget_s=left
    )
    pop = _metrics(MostPop().fit(split.train), split.valid)
    every = every_step(seqs)
    for name, model in {**fitted, "blend": blend}.items():
        out[name] = (
            model.recounted(every),
            {"valid": _metrics(model, split_for_run(seqs, model.max_len).valid), "mostpop": pop},
        )
    return out
