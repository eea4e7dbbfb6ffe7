"""The audit's inputs: a population's homepages for up to three lists, as the plain frames the metrics take.

- "model": the unconstrained model-only lists; "draft": the lists under a draft rule set — both from ONE
  ``core.ranking.population.population_homepages`` call per chunk of users (one forward pass, the top-M of
  the whole chunk at once; ``homepage_frames``, the only function here that knows the ranking code).
- "live": the live release, loaded from its artifact as the storefront API loads it (``live_release``,
  ``core.serve.context``): its model and rule set; its own snapshot without a hold-out, the same held-out
  histories as the other lists with one (``live_homepage_frame``).

Held-out next events: a homepage built from a history that already holds the event it should predict
scores that event far too well (on the demo shop HR@10 rises from about 0.37 to 0.63). So by default the
audit builds every homepage on a held-out copy of the store (``holdout_store``): each user's last step
(the one training validates on, see ``core.training.split_for_run``) and everything after it are left
out, and that step is the user's held-out next event. A run's count parts count every step once it is
validated, so on the copy they count again on the steps left (``core.ranking.shop.held_out_context``).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from core import store
from core.config import settings
from core.data.sequences import load_sequences
from core.errors import ArtifactError, InputError
from core.insight.audit import LISTS
from core.insight.audit_report import AuditInputs
from core.model_runs import load_active_model
from core.ranking.homepage import DEFAULT_K
from core.ranking.population import population_homepages
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import RuleSet
from core.ranking.shop import ShopContext, held_out_context, read_shop
from core.release.artifact import open_live, read_pointer
from core.release.roles import Account, Permission, allowed, require
from core.serve.context import ServedRelease, load_release

Progress = Callable[[float, str], None]
_build_lock = threading.Lock()
CHUNK = 2000  # users per population_homepages call: one forward pass each; the (B, N+1) scores bound memory
COPIED_TABLES = ("items", "sellers", "users", "promotions", "model_runs", "ingests")  # constants, not input


def homepage_frames(
    user_ids: list[str],
    rule_set: RuleSet,
    k: int = DEFAULT_K,
    db_path=None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    ctx: ShopContext | None = None,
) -> dict[str, pl.DataFrame]:
    """The adapter to the ranking code: "model" and "draft" homepages of ``user_ids`` as frames
    (user_id, rank, item_id), from ``population_homepages`` per chunk (the batch path: the same lists as
    ``homepages_for``'s ``model_only`` and ``ruled``, without the preview's extras), on ``ctx`` (default:
    the snapshot of ``db_path``)."""
    parts: dict[str, list[pl.DataFrame]] = {"model": [], "draft": []}
    for start in range(0, len(user_ids), chunk):
        if progress:
            progress(start / max(1, len(user_ids)), f"homepages {start:,} of {len(user_ids):,}")
        lists = population_homepages(user_ids[start : start + chunk], rule_set, k=k, db_path=db_path, ctx=ctx)
        parts["model"].append(lists["model_only"])
        parts["draft"].append(lists["ruled"])
    schema = {"user_id": pl.Utf8, "rank": pl.Int64, "item_id": pl.Utf8}
    return {
        name: pl.concat(frames).rename({"slot": "rank"}) if frames else pl.DataFrame(schema=schema)
        for name, frames in parts.items()
    }


def live_release() -> ServedRelease:
    """The release live now, from its artifact (verified against its manifest), as the storefront serves it;
    an InputError when nothing is published yet or its artifact cannot be read."""
    try:
        pointer = read_pointer()
        if pointer is None:
            raise InputError(
                "no release is live yet, so there are no live homepages to audit",
                fix="audit against model or draft; publish a release first to compare with live",
            )
        entry, artifact = open_live()
        return load_release(entry, artifact)
    except ArtifactError as exc:
        raise InputError(
            f"the live release cannot be read: {exc}", fix="check it with python -m core releases --check"
        ) from None


def live_homepage_frame(
    user_ids: list[str], k: int = DEFAULT_K, histories=None, release: ServedRelease | None = None
) -> pl.DataFrame:
    """The live release's homepages (user_id, rank, item_id) under its own rule set and model. Without
    ``histories``: on the release's snapshot, exactly what the storefront answers. With a store path (the
    held-out copy): on that store's histories, so the live lists are measured on the same held-out events
    as the model and draft lists (the release's snapshot may hold those events, which would flatter it)."""
    release = release or live_release()
    ctx = release.ctx if histories is None else held_out_context(read_shop(histories), release.ctx.active)
    parts = [
        population_homepages(user_ids[start : start + CHUNK], release.rule_set, k=k, ctx=ctx)["ruled"]
        for start in range(0, len(user_ids), CHUNK)
    ]
    schema = {"user_id": pl.Utf8, "rank": pl.Int64, "item_id": pl.Utf8}
    return pl.concat(parts).rename({"slot": "rank"}).cast(schema) if parts else pl.DataFrame(schema=schema)


def _signature(db_path=None) -> str:
    """What the held-out copy depends on: loads, the active run, catalog, users, promotions, events."""
    row = store.query(
        """SELECT (SELECT coalesce(max(ingest_id), 0) FROM ingests) AS ingests,
                  (SELECT coalesce(max(run_id), '') FROM model_runs WHERE active) AS run,
                  (SELECT count(*) FROM items) AS items, (SELECT count(*) FROM users) AS users,
                  (SELECT count(*) FROM promotions) AS promotions, (SELECT count(*) FROM events) AS events""",
        db_path=db_path,
    ).row(0)
    return hashlib.sha1(repr(row).encode()).hexdigest()[:16]


def holdout_store(db_path=None) -> tuple[Path, pl.DataFrame]:
    """A copy of the store without each user's last step, and those steps (user_id, item_id).

    Kept under ``<data>/audit/`` per store state and reused; written under temporary names and renamed,
    so a failed build leaves nothing half-written. The store itself is only read."""
    folder = settings().data_dir / "audit"
    sig = _signature(db_path)
    path, targets_path = folder / f"holdout-{sig}.duckdb", folder / f"holdout-{sig}.parquet"
    with _build_lock:  # two sessions auditing at once build the copy once
        if not (path.exists() and targets_path.exists()):
            folder.mkdir(parents=True, exist_ok=True)
            _build_holdout(db_path, path, targets_path)
            for old in folder.glob("holdout-*"):  # copies of older store states
                if sig not in old.name:
                    old.unlink(missing_ok=True)
    return path, pl.read_parquet(targets_path)


def _build_holdout(db_path, path: Path, targets_path: Path) -> None:
    steps = load_sequences(db_path)  # each user's steps as the model reads them, time order
    users = [u for u, s in zip(steps.user_ids, steps.items) if len(s)]
    last = np.array([s[-1] for s in steps.items if len(s)], dtype=np.int64)
    cut = pl.DataFrame({"user_id": users, "cut": [t[-1] for t, s in zip(steps.ts, steps.items) if len(s)]})
    targets = pl.DataFrame({"user_id": users, "item_id": steps.catalog.vocab.decode(last)})
    with store.connect(db_path) as con:
        tables = {t: con.sql(f"SELECT * FROM {t}").pl() for t in COPIED_TABLES}
        con.register("cut", cut)  # by name: the store's instance does not scan Python variables
        tables["events"] = con.sql(
            "SELECT e.* FROM events e LEFT JOIN cut c USING (user_id) WHERE c.cut IS NULL OR epoch(e.ts) < c.cut"
        ).pl()
    token = uuid.uuid4().hex
    tmp, tmp_targets = path.with_name(f".{token}.duckdb"), targets_path.with_name(f".{token}.parquet")
    try:
        with store.transaction(tmp) as con:
            for name, frame in tables.items():
                con.register("copied", frame)  # by name: the store's instance does not scan Python variables
                con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM copied")
                con.unregister("copied")
        targets.write_parquet(tmp_targets)
        os.replace(tmp, path)
        os.replace(tmp_targets, targets_path)
    finally:
        for leftover in (tmp, tmp_targets, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def population(ids: list[str], sample: int | None, seed: int) -> tuple[list[str], str]:
    """All ``ids``, or a seeded sample of ``sample`` of them (sorted), and a line that says which."""
    ids = sorted(ids)
    if sample is not None and sample < 1:
        raise InputError(
            f"sample size {sample} is below 1", fix="give a sample of at least 1 shopper, or none"
        )
    if not ids:
        raise InputError(
            "the store has no shopper with history", fix="load events first (python -m core demo)"
        )
    if sample is None or sample >= len(ids):
        return ids, f"all {len(ids):,} shoppers with history"
    picked = sorted(np.random.default_rng(seed).choice(ids, sample, replace=False).tolist())
    return picked, f"sample of {sample:,} of {len(ids):,} shoppers with history (seed {seed})"


def _frames(db_path, user_ids: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, datetime]:
    """items (with seller tier and interaction counts), the population's users and history, the shop clock."""
    with store.connect(db_path) as con:
        con.register("pop", pl.DataFrame({"user_id": user_ids}))  # by name: no scan of Python variables
        items = con.sql(
            """SELECT i.item_id, i.seller_id, s.tier AS seller_tier, i.brand, i.category, i.created_at,
                      coalesce(i.in_stock, true) AS in_stock, coalesce(n.interactions, 0) AS interactions
               FROM items i LEFT JOIN sellers s USING (seller_id)
               LEFT JOIN (SELECT item_id, count(*) AS interactions FROM events GROUP BY item_id) n USING (item_id)
               ORDER BY i.item_id"""
        ).pl()
        users = con.sql(
            """SELECT p.user_id, u.first_seen, u.region, u.device, u.segment
               FROM pop p LEFT JOIN users u USING (user_id) ORDER BY p.user_id"""
        ).pl()
        history = con.sql(
            """SELECT user_id, item_id FROM events
               WHERE event_type <> 'review' AND user_id IN (SELECT user_id FROM pop)"""
        ).pl()
        latest = con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    fixed = settings().now
    now = datetime.fromisoformat(fixed) if fixed else (latest or datetime.now())
    return items, users, history, now


def _may_audit(actor: Account, holdout: bool) -> None:
    if holdout or not allowed(actor, Permission.PUBLISH):
        require(actor, Permission.AUDIT)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _lap(stage: str, since: tuple[float, float], wall: dict, cpu: dict) -> tuple[float, float]:
    """Note the wall and CPU seconds of ``stage`` since ``since``; the clock now, for the next stage."""
    now = _clock()
    wall[stage], cpu[stage] = now[0] - since[0], now[1] - since[1]
    return now


def audit_inputs(
    against: tuple[str, ...] = ("model", "draft"),
    rule_set: RuleSet | None = None,
    sample: int | None = None,
    seed: int = 0,
    k: int | None = None,
    holdout: bool = True,
    *,
    actor: Account,
    db_path=None,
    progress: Progress | None = None,
) -> AuditInputs:
    """Build the audit's frames for a population: all shoppers with history, or a seeded ``sample``.

    ``rule_set`` is the draft (default: the latest saved version). ``holdout`` (default) builds the
    homepages on the held-out copy and returns the held-out next events; without it the homepages are
    today's and there is no quality to measure. ``actor`` must hold the audit permission (product
    managers and up), or be a merchandiser asking for exposure only (``holdout=False``: the Publish page's
    flags for a draft)."""
    _may_audit(actor, holdout)
    k = k or DEFAULT_K
    unknown = [a for a in against if a not in LISTS]
    if unknown or not against:
        raise InputError(
            f"cannot audit against {', '.join(unknown) or 'nothing'}", fix="use model, draft or live"
        )
    live = live_release() if "live" in against else None  # before minutes of work
    report = progress or (lambda f, m="": None)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0 = _clock()
    draft = rule_set if rule_set is not None else load_rule_set(db_path=db_path)
    report(0.0, "holding out each shopper's last step" if holdout else "reading the population")
    if holdout:
        source, held_out = holdout_store(db_path)
        ids = held_out["user_id"].to_list()
    else:
        source, held_out = db_path, None
        ids = store.query("SELECT DISTINCT user_id FROM events", db_path=db_path)["user_id"].to_list()
    user_ids, label = population(ids, sample, seed)
    t0 = _lap("hold-out copy", t0, timings, cpu)
    # on the held-out copy, the model's counts too are those of the steps before each held-out one
    ctx = held_out_context(read_shop(source), load_active_model(source)) if holdout else None
    t0 = _lap("snapshot", t0, timings, cpu)
    frames = homepage_frames(
        user_ids, draft, k, source, progress=lambda f, m: report(0.05 + 0.85 * f, m), ctx=ctx
    )
    if "live" in against:
        frames["live"] = live_homepage_frame(user_ids, k, source if holdout else None, release=live)
    t0 = _lap("homepages", t0, timings, cpu)
    items, users, history, now = _frames(source, user_ids)
    if held_out is not None:
        held_out = held_out.join(pl.DataFrame({"user_id": user_ids}), on="user_id", how="semi")
    _lap("frames", t0, timings, cpu)
    report(0.95, "measuring")
    homepages = {name: frames[name] for name in against}
    return AuditInputs(homepages, items, users, history, held_out, now, label, timings, cpu)


def draft_flags(
    actor: Account, rule_set: RuleSet, sample: int = 300, seed: int = 0, db_path=None
) -> list[str]:
    """The audit's flags for a draft's homepages (exposure, popularity bias, calibration, on today's store:
    no hold-out), which the Publish page shows before its button."""
    from core.insight.audit_report import build_report

    inputs = audit_inputs(
        ("draft",), rule_set, sample=sample, seed=seed, holdout=False, actor=actor, db_path=db_path
    )
    return build_report(inputs, n_boot=0, seed=seed).lists["draft"].flags
