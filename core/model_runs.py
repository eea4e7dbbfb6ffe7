"""Model runs on the store: train (pretrain, optional fine-tune), record, activate, load.

A run is stored once: its checkpoint under ``data/models/<run_id>/`` (``models.registry``: ``config.json``
with the model's kind, settings and training curve, and its tensors) plus ``catalog.json`` (the vocabulary
and side-feature codes it was trained with), and one row in ``model_runs`` (kind, stage, status, metrics,
data snapshot, seconds, device). Training reads the store in one unit of work, closes it, computes, then
opens it again to record the run, so the app and other jobs are never locked out for the length of a
training. A failed training is recorded as failed (with what failed) and leaves the active run untouched.

``train_run(*, actor, architecture="lstm", finetune_on=None, epochs=None, device=None, time_budget_s=None,
            activate=True, progress=None, on_epoch=None, config=None, db_path=None) -> RunResult``
``activate_run(run_id, actor)``, ``list_runs()``, ``runs_table()``, ``active_run()``, ``load_active_model()``
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

import polars as pl
import torch

from core import store
from core.config import settings
from core.data.sequences import Catalog, ShopSequences, Vocab, load_catalog, load_sequences
from core.errors import InputError, NotFoundError
from core.release.roles import Account, Permission, require
from core.training import Relay, check_trainable, run_label, train_candidates, train_model
from models.base import Progress, Recommender, SequenceData
from models.baselines import MostPop
from models.infer import pick_device
from models.layers import NeuralConfig
from models.registry import load_model, save_model


@dataclass
class RunResult:
    run_id: str
    path: Path
    metrics: dict
    train_seconds: float
    device: str
    active: bool
    architecture: str = "lstm"

    def summary(self) -> str:
        m = self.metrics
        parts = [f"{self.architecture} run {self.run_id} on {self.device} in {self.train_seconds:.0f} s"]
        for key in ("valid", "slice_pretrained", "slice_finetuned", "mostpop"):
            if key in m:
                parts.append(f"{key}: " + ", ".join(f"{k} {v:.4f}" for k, v in m[key].items()))
        if self.active:
            parts.append("active")
        return " | ".join(parts)


def _save(run_dir: Path, model: Recommender, catalog: Catalog, meta: dict) -> None:
    """The checkpoint and the catalog it was trained with: all a later process needs to load the run."""
    save_model(model, run_dir, meta=meta)
    doc = {"item_ids": catalog.vocab.item_ids, "categories": catalog.categories, "brands": catalog.brands}
    (run_dir / "catalog.json").write_text(json.dumps(doc))


def _snapshot(seqs: ShopSequences) -> dict:
    return {
        "users": len(seqs),
        "items": seqs.catalog.n_items,
        "steps": int(sum(len(s) for s in seqs.items)),
        "trained_at": datetime.now().isoformat(timespec="seconds"),
    }


def _record(
    run: RunResult, stage: str, model: Recommender, snapshot: dict, finetune_on, actor: Account, db_path
) -> None:
    with store.transaction(db_path) as con:
        con.execute(
            """INSERT INTO model_runs (run_id, created_at, kind, stage, status, path, config, metrics,
               data_snapshot, train_seconds, device, active) VALUES (?, now(), ?, ?, 'done', ?, ?, ?, ?, ?, ?, FALSE)""",
            [
                run.run_id,
                run.architecture,
                stage,
                str(run.path),
                json.dumps(model.config_dict()),
                json.dumps(run.metrics),
                json.dumps(snapshot),
                run.train_seconds,
                run.device,
            ],
        )
        details = {"architecture": run.architecture, "metrics": run.metrics, "finetune_on": finetune_on}
        store.audit(con, actor, "train", run.run_id, details)
        if run.active:
            _activate(con, run.run_id, actor)


def _record_failure(
    run_id: str, architecture: str, stage: str, device: str, exc: BaseException, db_path
) -> None:
    """A failed run's row; if even that cannot be written, the original error says so in a note."""
    try:
        with store.transaction(db_path) as con:
            con.execute(
                """INSERT INTO model_runs (run_id, created_at, kind, stage, status, device, active, message)
                   VALUES (?, now(), ?, ?, 'failed', ?, FALSE, ?)""",
                [run_id, architecture, stage, device, f"{type(exc).__name__}: {exc}"],
            )
    except Exception as record_exc:
        exc.add_note(
            f"the failed run {run_id} could not be recorded either: {type(record_exc).__name__}: {record_exc}"
        )


def train_run(
    *,
    actor: Account,
    architecture: str = "lstm",
    finetune_on: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    time_budget_s: float | None = None,
    activate: bool = True,
    progress: Callable[[float, str], None] | None = None,
    on_epoch: Callable[[Progress], None] | None = None,
    config: NeuralConfig | None = None,
    db_path=None,
) -> RunResult:
    """Train a model of ``architecture`` on the store and record it as a run in ``actor``'s name (see
    module docstring). Who may train is checked before any work."""
    require(actor, Permission.TRAIN)
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    run_dir = settings().models_dir / run_id
    dev = str(pick_device(device or settings().device))
    stage = "finetune" if finetune_on else "pretrain"
    started = time.perf_counter()
    try:
        seqs = load_sequences(db_path)
        check_trainable(seqs.items)
        relay = Relay(progress, on_epoch, 0.7 if finetune_on else 0.95)
        model, metrics = train_model(
            seqs, architecture, config, epochs, finetune_on, time_budget_s, dev, relay
        )
        seconds = time.perf_counter() - started
        _save(run_dir, model, seqs.catalog, {"run_id": run_id, "finetune_on": finetune_on})
        run = RunResult(run_id, run_dir, metrics, seconds, dev, activate, architecture)
        _record(run, stage, model, _snapshot(seqs), finetune_on, actor, db_path)
    except BaseException as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        _record_failure(run_id, architecture, stage, dev, exc, db_path)
        raise
    if progress:
        progress(1.0, "done")
    return run


def train_best(
    *,
    actor: Account,
    time_budget_s: float | None = None,
    progress: Callable[[float, str], None] | None = None,
    db_path=None,
) -> list[RunResult]:
    """first-run's choice: train the candidates of ``core.training.train_candidates`` (a transformer, an LSTM,
    their blend with item-kNN and popularity) on the same split within ``time_budget_s``, record each as a run
    (shown side by side on the Model page) and activate the best on validation NDCG@10."""
    require(actor, Permission.TRAIN)
    dev = str(pick_device(settings().device))
    seqs = load_sequences(db_path)
    check_trainable(seqs.items)
    candidates = train_candidates(seqs, time_budget_s, dev, Relay(progress, None, 0.95))
    best = max(candidates, key=lambda name: candidates[name][1]["valid"].get("ndcg@10", 0.0))
    runs = []
    for name, (model, metrics) in candidates.items():
        run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        run_dir = settings().models_dir / run_id
        run = RunResult(run_id, run_dir, metrics, model.train_seconds, dev, name == best, name)
        _save(run_dir, model, seqs.catalog, {"run_id": run_id, "chosen_from": list(candidates)})
        _record(run, "pretrain", model, _snapshot(seqs), None, actor, db_path)
        runs.append(run)
    if progress:
        progress(1.0, f"done: {best} is the best on validation")
    return runs


def _activate(con, run_id: str, actor: Account) -> None:
    require(actor, Permission.ACTIVATE_MODEL, con)
    found = con.execute("SELECT status FROM model_runs WHERE run_id = ?", [run_id]).fetchall()
    if not found:
        raise NotFoundError(f"no model run '{run_id}' — see `python -m core runs`")
    if found[0][0] != "done":
        raise InputError(f"model run '{run_id}' {found[0][0]}; only a finished run can be activated")
    con.execute("UPDATE model_runs SET active = (run_id = ?)", [run_id])
    store.audit(con, actor, "activate_run", run_id)


def activate_run(run_id: str, actor: Account, db_path=None) -> None:
    """Make ``run_id`` the draft's model (what the preview uses; shoppers get it with the next publish)."""
    with store.transaction(db_path) as con:
        _activate(con, run_id, actor)


def list_runs(db_path=None) -> pl.DataFrame:
    return store.query(
        """SELECT run_id, created_at, kind AS architecture, stage, status, active, device,
                  round(train_seconds) AS train_seconds, metrics, data_snapshot, message
           FROM model_runs ORDER BY created_at DESC""",
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


def _run_catalog(path: Path) -> tuple[list[str], dict]:
    """The item ids and side-feature code lists a run was trained with (``catalog.json``; runs saved before it
    kept them in ``vocab.json`` and ``side_codes.json``)."""
    if (path / "catalog.json").exists():
        doc = json.loads((path / "catalog.json").read_text())
        return doc["item_ids"], doc
    codes = json.loads((path / "side_codes.json").read_text()) if (path / "side_codes.json").exists() else {}
    return Vocab.load(path / "vocab.json").item_ids, codes


def load_active_model(db_path=None) -> ActiveModel:
    """The active run (cached per process while neither the run nor the catalog changes), extended
    with catalog items added since it was trained (cold start)."""
    key = str(db_path or settings().db_path)
    with store.connect(db_path) as con:
        rows = con.execute(
            "SELECT run_id, path, kind FROM model_runs WHERE active AND status = 'done'"
        ).fetchall()
        n_items = con.execute("SELECT count(*) FROM items").fetchall()[0][0]
    run_id, path, kind = rows[0] if rows else (None, None, None)
    # one torch thread for serving: single-user forward passes are tiny, and on a small shared CPU
    # several threads wait on each other (training runs in its own process with its own setting)
    torch.set_num_threads(settings().infer_threads)
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit.run_id == run_id and hit.catalog_size == n_items:
        return hit
    result = _loaded(run_id, path, kind, n_items, db_path)
    with _cache_lock:
        _cache[key] = result
    return result


def load_run_model(run_id: str, db_path=None) -> ActiveModel:
    """A finished run as the active one would be served, without activating it (what a bench compares)."""
    with store.connect(db_path) as con:
        rows = con.execute(
            "SELECT path, kind FROM model_runs WHERE run_id = ? AND status = 'done'", [run_id]
        ).fetchall()
        n_items = con.execute("SELECT count(*) FROM items").fetchall()[0][0]
    if not rows:
        raise NotFoundError(f"no finished model run '{run_id}' — see `python -m core runs`")
    return _loaded(run_id, rows[0][0], rows[0][1], n_items, db_path)


def _loaded(run_id: str | None, path: str | None, kind: str | None, n_items: int, db_path) -> ActiveModel:
    """The run at ``path`` (None: the popularity fallback), its catalog aligned to the store's."""
    item_ids, codes = _run_catalog(Path(path)) if path else ([], {})
    with store.connect(db_path) as con:
        catalog = load_catalog(con, codes.get("categories"), codes.get("brands"))
    if run_id is None:
        seqs = load_sequences(db_path, catalog=catalog)
        model = MostPop().fit(SequenceData(seqs.items, n_items=catalog.n_items))
        result = ActiveModel(model, catalog, None, "popularity baseline (no model trained yet)")
    else:
        model = load_model(path, device=pick_device(settings().device))
        catalog = _align_catalog(catalog, Vocab(item_ids), model)
        result = ActiveModel(model, catalog, run_id, run_label(model, kind, run_id))
    result.catalog_size = n_items
    return result


def _align_catalog(current: Catalog, vocab: Vocab, model: Recommender) -> Catalog:
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


RUN_COLUMNS = ("run_id", "created_at", "architecture", "stage", "status", "active", "device", "train_seconds")


def runs_table(db_path=None) -> pl.DataFrame:
    """Runs with their validation metrics flattened, next to the popularity baseline's. ``data`` names the
    store the run was trained on: runs with the same ``data`` were validated on the same split (the latest step
    of the same sample of shoppers), so their figures compare side by side."""
    rows = []
    for r in list_runs(db_path).to_dicts():
        m = json.loads(r.pop("metrics") or "{}")
        snap = json.loads(r.pop("data_snapshot") or "{}")
        row = {k: r[k] for k in RUN_COLUMNS}
        row["data"] = f"{snap['users']:,} users, {snap['steps']:,} steps" if snap else None
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


def compare_runs(db_path=None) -> pl.DataFrame:
    """The finished runs trained on the same data as the newest one (so validated on the same split), in long
    form for a side-by-side chart: run (architecture · id), architecture, metric, value; the popularity
    baseline on that split is one more bar."""
    table = runs_table(db_path)
    if table.is_empty() or table.filter(pl.col("status") == "done").is_empty():
        return pl.DataFrame(
            schema={"run": pl.String, "architecture": pl.String, "metric": pl.String, "value": pl.Float64}
        )
    done = table.filter(pl.col("status") == "done")
    same = done.filter(pl.col("data") == done["data"][0])
    long = same.select(
        run=pl.col("architecture") + " · " + pl.col("run_id"),
        architecture="architecture",
        **{"HR@10": "hr@10", "NDCG@10": "ndcg@10"},
    ).unpivot(index=["run", "architecture"], variable_name="metric", value_name="value")
    pop = (
        same.head(1)
        .select(
            run=pl.lit("popularity (same split)"),
            architecture=pl.lit("mostpop"),
            **{"HR@10": "mostpop hr@10", "NDCG@10": "mostpop ndcg@10"},
        )
        .unpivot(index=["run", "architecture"], variable_name="metric", value_name="value")
    )
    return pl.concat([long, pop]).drop_nulls("value")
