"""Model runs on the store: train (pretrain, optional fine-tune), record, activate, load.

A run is stored under ``data/models/<run_id>/`` (state dict, vocabulary, config, metrics,
data snapshot) and listed in ``model_runs``. Training reads the store in one unit of work,
closes it, computes, then opens it again to record the run, so the app and other jobs are
never locked out for the length of a training. A failed training is recorded as failed and
leaves the active run untouched.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch

from core import store
from core.config import settings
from core.data.sequences import N_GAP_BUCKETS, Catalog, ShopSequences, Vocab, load_catalog, load_sequences
from core.errors import InputError, NotFoundError
from models.base import Progress, Recommender
from models.baselines import MostPop
from models.lstm import LSTMConfig, LSTMRecommender
from models.train import EvalSet, SequenceData, finetune, fit, load_run, ndcg_at, pick_device, save_run

MIN_STEPS = 3  # a user needs history + a held-out step
VALID_USERS = 5000  # validation sample, enough for stable NDCG@10 and fast epochs


@dataclass
class RunResult:
    run_id: str
    path: Path
    metrics: dict
    train_seconds: float
    device: str
    active: bool

    def summary(self) -> str:
        m = self.metrics
        parts = [f"run {self.run_id} on {self.device} in {self.train_seconds:.0f} s"]
        for key in ("valid", "slice_pretrained", "slice_finetuned", "mostpop"):
            if key in m:
                parts.append(f"{key}: " + ", ".join(f"{k} {v:.4f}" for k, v in m[key].items()))
        if self.active:
            parts.append("active")
        return " | ".join(parts)


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


def split_leave_one_out(
    seqs: ShopSequences, max_len: int, mask: list[np.ndarray] | None = None, seed: int = 0
):
    """Train on every step but each user's last; validate on the last (optionally only in-slice ones)."""
    train = SequenceData(
        items=[s[:-1] for s in seqs.items],
        event_types=[e[:-1] for e in seqs.event_types],
        gaps=[g[:-1] for g in seqs.gaps],
        target_mask=None if mask is None else [m[:-1] for m in mask],
    )
    rows = [u for u, s in enumerate(seqs.items) if len(s) >= MIN_STEPS and (mask is None or mask[u][-1])]
    rng = np.random.default_rng(seed)
    if len(rows) > VALID_USERS:
        rows = sorted(rng.choice(rows, VALID_USERS, replace=False).tolist())
    if not rows:
        return train, None
    h = seqs.histories(rows, max_len=max_len, drop_last=1)
    targets = np.array([seqs.items[u][-1] for u in rows])
    return train, EvalSet(h, torch.from_numpy(targets))


def _metrics(model: Recommender, valid: EvalSet | None) -> dict:
    if valid is None or len(valid) == 0:
        return {}
    return ndcg_at(model, valid, ks=(10, 20))


def train_run(
    *,
    finetune_on: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    time_budget_s: float | None = None,
    activate: bool = True,
    progress: Callable[[float, str], None] | None = None,
    on_epoch: Callable[[Progress], None] | None = None,
    config: LSTMConfig | None = None,
    db_path=None,
) -> RunResult:
    """Train an LSTM on the store and record it as a run (see module docstring)."""
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    cfg = settings()
    run_dir = cfg.models_dir / run_id
    started = time.perf_counter()
    dev = str(pick_device(device or settings().device))
    try:
        seqs = load_sequences(db_path)
        if sum(len(s) >= MIN_STEPS for s in seqs.items) == 0:
            raise InputError("the store has no user with 3 or more steps to learn from — load events first")
        config = config or LSTMConfig()
        config.n_items = seqs.catalog.n_items
        config.n_gap_buckets = N_GAP_BUCKETS
        if epochs:
            config.max_epochs = epochs
        mask = slice_mask(finetune_on, seqs) if finetune_on else None
        train, valid = split_leave_one_out(seqs, config.max_len)
        budget = time_budget_s
        pre_budget = budget * (0.7 if finetune_on else 1.0) if budget else None

        def relay(p: Progress, offset: float, span: float) -> None:
            if on_epoch:
                on_epoch(p)
            if progress:
                text = f"{p.stage} epoch {p.epoch} step {p.step}/{p.steps_per_epoch}"
                if p.loss is not None:
                    text += f" loss {p.loss:.3f}"
                if p.metrics:
                    text += " " + " ".join(f"{k} {v:.4f}" for k, v in p.metrics.items())
                progress(min(1.0, offset + span * p.fraction), text)

        span = 0.7 if finetune_on else 0.95
        model = fit(
            config,
            train,
            valid,
            seqs.catalog.side,
            time_budget_s=pre_budget,
            device=dev,
            progress=lambda p: relay(p, 0.0, span),
        )
        metrics: dict = {"valid": _metrics(model, valid)}
        stage = "pretrain"
        if finetune_on:
            ft_train, ft_valid = split_leave_one_out(seqs, config.max_len, mask)
            if ft_valid is None:
                raise InputError(f"--finetune-on {finetune_on}: no user's latest step is in that slice")
            metrics["slice"] = finetune_on
            metrics["slice_pretrained"] = _metrics(model, ft_valid)
            remaining = max(10.0, budget - (time.perf_counter() - started)) if budget else None
            model = finetune(
                model,
                ft_train,
                ft_valid,
                time_budget_s=remaining,
                device=dev,
                progress=lambda p: relay(p, span, 0.95 - span),
            )
            metrics["slice_finetuned"] = _metrics(model, ft_valid)
            stage = "finetune"
        pop = MostPop().fit(train)
        metrics["mostpop"] = _metrics(pop, valid)
        seconds = time.perf_counter() - started
        snapshot = {
            "users": len(seqs),
            "items": seqs.catalog.n_items,
            "steps": int(sum(len(s) for s in seqs.items)),
            "trained_at": datetime.now().isoformat(timespec="seconds"),
        }
        save_run(model, run_dir, meta={"run_id": run_id, "finetune_on": finetune_on})
        seqs.catalog.vocab.save(run_dir / "vocab.json")
        codes = {"categories": seqs.catalog.categories, "brands": seqs.catalog.brands}
        (run_dir / "side_codes.json").write_text(json.dumps(codes))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (run_dir / "snapshot.json").write_text(json.dumps(snapshot, indent=2))
        (run_dir / "history.json").write_text(json.dumps(model.training_curve(), default=float))
        with store.transaction(db_path) as con:
            con.execute(
                """INSERT INTO model_runs (run_id, created_at, kind, stage, status, path, config, metrics,
                   data_snapshot, train_seconds, device, active) VALUES (?, now(), 'lstm', ?, 'done', ?, ?, ?, ?, ?, ?, FALSE)""",
                [
                    run_id,
                    stage,
                    str(run_dir),
                    json.dumps(model.config_dict()),
                    json.dumps(metrics),
                    json.dumps(snapshot),
                    seconds,
                    dev,
                ],
            )
            store.audit(con, "trainer", "train", run_id, {"metrics": metrics, "finetune_on": finetune_on})
            if activate:
                _activate(con, run_id)
        if progress:
            progress(1.0, "done")
        return RunResult(run_id, run_dir, metrics, seconds, dev, activate)
    except BaseException as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        try:
            with store.transaction(db_path) as con:
                con.execute(
                    """INSERT INTO model_runs (run_id, created_at, kind, stage, status, device, active, message)
                       VALUES (?, now(), 'lstm', ?, 'failed', ?, FALSE, ?)""",
                    [run_id, "finetune" if finetune_on else "pretrain", dev, f"{type(exc).__name__}: {exc}"],
                )
        except Exception:  # recording the failure must not hide the failure
            pass
        raise


def _activate(con, run_id: str) -> None:
    found = con.execute("SELECT status FROM model_runs WHERE run_id = ?", [run_id]).fetchall()
    if not found:
        raise NotFoundError(f"no model run '{run_id}' — see `python -m core runs`")
    if found[0][0] != "done":
        raise InputError(f"model run '{run_id}' {found[0][0]}; only a finished run can be activated")
    con.execute("UPDATE model_runs SET active = (run_id = ?)", [run_id])
    store.audit(con, "merchandiser", "activate_run", run_id)


def activate_run(run_id: str, db_path=None) -> None:
    with store.transaction(db_path) as con:
        _activate(con, run_id)


def list_runs(db_path=None) -> pl.DataFrame:
    return store.query(
        """SELECT run_id, created_at, stage, status, active, device, round(train_seconds) AS train_seconds,
                  metrics, message FROM model_runs ORDER BY created_at DESC""",
        db_path=db_path,
    )


def active_run(db_path=None) -> dict | None:
    rows = store.query(
        "SELECT run_id, path, metrics, created_at FROM model_runs WHERE active AND status = 'done'",
        db_path=db_path,
    ).to_dicts()
    return rows[0] if rows else None


@dataclass
class ActiveModel:
    """What every consumer scores with: the active run, or the labelled popularity fallback."""

    model: Recommender
    catalog: Catalog
    run_id: str | None
    label: str
    loaded_at: float = field(default_factory=time.time)
    catalog_size: int = 0

    @property
    def is_fallback(self) -> bool:
        return self.run_id is None


_cache: dict[str, ActiveModel] = {}
_cache_lock = threading.Lock()


def load_active_model(db_path=None) -> ActiveModel:
    """The active run (cached per process while neither the run nor the catalog changes), extended
    with catalog items added since it was trained (cold start)."""
    key = str(db_path or settings().db_path)
    with store.connect(db_path) as con:
        rows = con.execute("SELECT run_id, path FROM model_runs WHERE active AND status = 'done'").fetchall()
        n_items = con.execute("SELECT count(*) FROM items").fetchall()[0][0]
    run_id, path = rows[0] if rows else (None, None)
    # one torch thread for serving: single-user forward passes are tiny, and on a small shared CPU
    # several threads wait on each other (training runs in its own process with its own setting)
    torch.set_num_threads(settings().infer_threads)
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit.run_id == run_id and hit.catalog_size == n_items:
        return hit
    codes = {}
    if path and (Path(path) / "side_codes.json").exists():
        codes = json.loads((Path(path) / "side_codes.json").read_text())
    with store.connect(db_path) as con:
        catalog = load_catalog(con, codes.get("categories"), codes.get("brands"))
    if run_id is None:
        seqs = load_sequences(db_path, catalog=catalog)
        model = MostPop().fit(SequenceData(items=seqs.items))
        result = ActiveModel(model, catalog, None, "popularity baseline (no model trained yet)")
    else:
        model = load_run(path, device=pick_device(settings().device))
        vocab = Vocab.load(Path(path) / "vocab.json")
        catalog = _align_catalog(catalog, vocab, model)
        result = ActiveModel(model, catalog, run_id, f"LSTM run {run_id}")
    result.catalog_size = n_items
    with _cache_lock:
        _cache[key] = result
    return result


def _align_catalog(current: Catalog, vocab: Vocab, model: LSTMRecommender) -> Catalog:
    """Keep the run's dense ids; append items that reached the catalog after training (cold start)."""
    new_ids = [i for i in current.vocab.item_ids if i not in vocab.index]
    order = vocab.item_ids + new_ids
    pos = {item: i for i, item in enumerate(current.vocab.item_ids)}
    take = [pos.get(i) for i in order]
    known = [t for t in take if t is not None]
    items = current.items[known] if len(known) == len(order) else None
    if items is None:  # items the run knew but the store no longer has: keep them with unknown attributes
        frames = []
        for item, t in zip(order, take):
            frames.append(current.items[t] if t is not None else pl.DataFrame({"item_id": [item]}))
        items = pl.concat(frames, how="diagonal_relaxed")
    idx = torch.tensor([0] + [(t + 1) if t is not None else 0 for t in take])
    side = current.side
    aligned = dataclasses.replace(
        side, category=side.category[idx], brand=side.brand[idx], price_bucket=side.price_bucket[idx]
    )
    if new_ids:
        model.add_items(len(new_ids), aligned)
    return Catalog(Vocab(order), items, aligned, current.categories, current.brands)


def runs_table(db_path=None) -> pl.DataFrame:
    """Runs with their validation metrics flattened, next to the popularity baseline's."""
    runs = list_runs(db_path)
    rows = []
    for r in runs.to_dicts():
        m = json.loads(r.pop("metrics") or "{}")
        row = {
            k: r[k] for k in ("run_id", "created_at", "stage", "status", "active", "device", "train_seconds")
        }
        for key, prefix in (
            ("valid", ""),
            ("mostpop", "mostpop "),
            ("slice_pretrained", "slice pretrained "),
            ("slice_finetuned", "slice fine-tuned "),
        ):
            for metric in ("hr@10", "ndcg@10"):
                row[prefix + metric] = m.get(key, {}).get(metric)
        row["message"] = r["message"]
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()
