"""The CLI for every batch job: ``python -m core <command>``.

Errors meant for people (``StudioError``) are printed as one sentence, without a traceback, and exit 2;
so is any other failure (with ``--traceback`` to see where it came from).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from core.config import settings
from core.errors import StudioError, storage_error
from core.insight.audit_cli import add_audit_command
from core.release import cli as release_cli
from core.release.auth import cli_actor
from core.release.roles import SYSTEM
from core.serve import cli as serve_cli


@contextmanager
def _bar(desc: str):
    """A tqdm bar fed by the same ``progress(fraction, message)`` callback the app uses."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, unit="‰", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def progress(fraction: float, message: str = "") -> None:
        bar.n = int(max(0.0, min(1.0, fraction)) * 1000)
        if message:
            bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


def cmd_demo(args) -> int:
    from core.data.demo import build_demo_shop

    with _bar("demo shop") as progress:
        summary = build_demo_shop(
            actor=cli_actor(),
            users=args.users,
            items=args.items,
            days=args.days,
            seed=args.seed,
            progress=progress,
        )
    print(summary)
    return 0


def cmd_ingest(args) -> int:
    from core.data.ingest import ingest_events

    mapping = dict(pair.split("=", 1) for pair in args.map) if args.map else None
    with _bar(f"ingest {Path(args.file).name}") as progress:
        result = ingest_events(args.file, args.format, actor=cli_actor(), mapping=mapping, progress=progress)
    print(result.summary())
    return 0


def cmd_ingest_catalog(args) -> int:
    from core.data.ingest import ingest_catalog

    result = ingest_catalog(args.file, args.kind, actor=cli_actor())
    print(result.summary())
    return 0


def cmd_stats(args) -> int:
    from core.data.features import overview_stats

    stats = overview_stats()
    by_type = stats.pop("by_type")
    stats["events_by_type"] = dict(zip(by_type["event_type"], by_type["events"], strict=True))
    print(json.dumps(stats, indent=2, default=str))
    return 0


def cmd_quality(args) -> int:
    from core.data.quality import quality_report

    report = quality_report(bot_events_per_minute=args.bot_rate)
    print(report.to_text())
    return 0


def cmd_train(args) -> int:
    from core.jobs import JobLog
    from core.model_runs import train_run

    job = JobLog(args.job_dir) if args.job_dir else None
    try:
        with _bar("train") as progress:
            run = train_run(
                actor=cli_actor(),
                architecture=args.architecture,
                finetune_on=args.finetune_on,
                epochs=args.epochs,
                device=args.device,
                time_budget_s=args.time_budget * 60 if args.time_budget else None,
                activate=not args.no_activate,
                progress=progress,
                on_epoch=job.epoch if job else None,
            )
    except BaseException as exc:
        if job:  # a person's error is its own sentence; anything else says what kind of failure it was
            job.finish(False, str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}")
        raise
    if job:
        job.finish(True, run.summary())
    print(run.summary())
    return 0


def cmd_runs(args) -> int:
    from core.model_runs import runs_table

    table = runs_table()
    if table.is_empty():
        print("no model runs yet: python -m core train")
        return 0
    cols = [
        "run_id",
        "architecture",
        "stage",
        "status",
        "active",
        "train_seconds",
        "hr@10",
        "ndcg@10",
        "data",
    ]
    print(format_table(table.to_dicts(), cols))
    return 0


def cmd_activate(args) -> int:
    from core.model_runs import activate_run

    activate_run(args.run_id, cli_actor())
    print(f"run {args.run_id} is now active")
    return 0


BENCH_COLUMNS = ["model", "protocol", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "valid_ndcg10", "train_seconds"]


def format_table(rows: list[dict], cols: list[str] = BENCH_COLUMNS) -> str:
    """Benchmark rows as a fixed-width table; every row names its protocol, the default model is starred."""

    def cell(r: dict, c: str) -> str:
        v = r.get(c)
        if c == "model" and r.get("default") is True:
            return f"{v} *"
        if isinstance(v, float):
            text = f"{v:.1f}" if c.startswith("train_seconds") else f"{v:.4f}"
            std = r.get(c + "_std")
            return (
                text
                if std is None
                else f"{text} ± {std:.1f}"
                if c.startswith("train")
                else f"{text} ± {std:.4f}"
            )
        return "" if v is None else str(v)

    cells = [[cell(r, c) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def cmd_bench(args) -> int:
    from core.insight.evaluate import run_benchmark, summarize

    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        with _bar(f"bench {Path(args.data).name} seed {seed}") as progress:
            rows += run_benchmark(
                args.data,
                time_budget_min=args.time_budget,
                models=tuple(args.models.split(",")),
                seed=seed,
                progress=lambda p: progress(p.fraction, f"{p.stage} epoch {p.epoch} step {p.step}"),
                budget_clock=args.budget_clock,
            )
    summary = summarize(rows) if args.seeds > 1 else []
    if args.json:
        print(json.dumps(rows + summary, indent=2))
    else:
        print(format_table(rows))
        if summary:
            print(f"\nmean ± standard deviation over {args.seeds} seeds (* = the default in that many runs)")
            print(
                format_table(
                    summary, ["model", "protocol", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "train_seconds"]
                )
            )
    return 0


def cmd_first_run(args) -> int:
    """What ``make run`` does before starting the app: demo shop, a first model, the default rule set
    (``core.ranking.defaults``) and release 1, once; the admin's one-time password while it is needed."""
    from core import store
    from core.data.demo import build_demo_shop
    from core.model_runs import active_run, train_best
    from core.ranking.defaults import ensure_default_rule_set

    if not store.scalar("SELECT count(*) FROM events"):
        print("first run: building the demo shop (once)")
        with _bar("demo shop") as progress:
            print(build_demo_shop(actor=SYSTEM, progress=progress))
    if active_run() is None:
        print(
            f"first run: training a transformer, an LSTM and their blend ({args.time_budget:g}-minute budget)"
        )
        with _bar("train") as progress:
            runs = train_best(actor=SYSTEM, time_budget_s=args.time_budget * 60, progress=progress)
        for run in runs:
            print(run.summary())
    ensure_default_rule_set(SYSTEM)  # version 1 of the rules, before release 1 publishes them
    _first_release_and_admin(args.url)
    return 0


def _first_release_and_admin(url: str) -> None:
    """Repair what an interrupted publish left, publish release 1 once, and print the admin's one-time
    password while the admin has not chosen one (as Jupyter prints its token)."""
    from core.release import releases, users
    from core.release.roles import SYSTEM

    for line in releases.reconcile():
        print(f"releases: {line}")
    if releases.release_state().head_id is None:
        print("first run: publishing release 1 (the first model and the default rule set)")
        releases.publish(SYSTEM, "first run: the first model and the default rule set", expected_head=None)
    password = users.bootstrap_admin()
    if password:
        print(
            f"\n    To sign in to Homepage Studio, open\n        {url}\n"
            f"    as  admin  with the one-time password\n        {password}\n"
            "    It works once: you choose your own password right after.\n",
            flush=True,
        )
    else:
        print(f"Homepage Studio: open {url} and sign in", flush=True)


def _add_model_commands(sub) -> None:
    """train, runs, activate, bench, first-run."""
    p = sub.add_parser("train", help="train (pretrain, optionally fine-tune) a model on the store")
    p.add_argument("--architecture", default="lstm", help="lstm | transformer | blend (default: lstm)")
    p.add_argument("--finetune-on", help="purchases | recent:7d | category:PATH")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="cpu | cuda | mps (default: auto, HS_DEVICE)")
    p.add_argument("--time-budget", type=float, help="minutes")
    p.add_argument("--no-activate", action="store_true")
    p.add_argument("--job-dir", help="write progress.jsonl and result.json here (used by the app)")
    p.set_defaults(func=cmd_train)

    sub.add_parser("runs", help="list model runs").set_defaults(func=cmd_runs)
    p = sub.add_parser("activate", help="make a model run the active one")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_activate)

    p = sub.add_parser(
        "bench",
        help="every model on a sequence file, as rows; * marks the best on validation",
        description="Leave-one-out on every user's sequence: epochs, settings, blend weights and the default "
        "are chosen on the second-last item; then the count models (item-kNN, EASE, popularity, the blend's "
        "count parts) count every step but the last, as a validated run does; the last item is scored once.",
    )
    p.add_argument("--data", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--time-budget", type=float, default=30.0, help="minutes of training per neural model")
    p.add_argument("--models", default="mostpop,itemknn,ease,lstm,transformer,blend")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--seeds", type=int, default=1, help="repeat with this many seeds and add mean ± std rows")
    p.add_argument(
        "--budget-clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: count the time budget in CPU seconds per thread (measuring on a machine shared with other jobs)",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("first-run", help="demo shop, model, release and admin if missing (make run)")
    p.add_argument("--time-budget", type=float, default=3.0, help="minutes for the first model")
    p.add_argument("--url", default="http://localhost:8501", help="where the app listens (for the message)")
    p.set_defaults(func=cmd_first_run)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted — nothing half-written was kept", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 — every failure ends in one sentence, never a traceback
        if args.traceback:
            traceback.print_exc()
        print(f"error: {_sentence(exc)}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Homepage Studio batch jobs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate the demo shop and load it")
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "ingest", help="load an event log (CSV/Parquet/JSONL, REES46, RetailRocket, sequences)"
    )
    p.add_argument("file")
    p.add_argument("--format", choices=["native", "rees46", "retailrocket", "sequence", "pairs"])
    p.add_argument("--map", nargs="*", help="canonical=source column pairs for native files")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ingest-catalog", help="load items, sellers, promotions or users (upsert)")
    p.add_argument("file")
    p.add_argument("--kind", choices=["items", "sellers", "promotions", "users"])
    p.set_defaults(func=cmd_ingest_catalog)

    sub.add_parser("stats", help="events, users, items, sessions, date range").set_defaults(func=cmd_stats)

    p = sub.add_parser("quality", help="the data quality report")
    p.add_argument("--bot-rate", type=int, default=30, help="events per minute that mark a bot")
    p.set_defaults(func=cmd_quality)

    _add_model_commands(sub)

    add_audit_command(sub, _bar)
    release_cli.register(sub)  # publish, rollback, releases, cancel-release, audit-log, users, forget-user
    serve_cli.register(sub)  # serve: the storefront API
    parser.add_argument("--traceback", action="store_true", help="show where an unexpected error came from")
    return parser


def _sentence(exc: Exception) -> str:
    """What to print for a failure: a ``StudioError``'s own message, the storage cause of an OS or
    DuckDB error, else the error's first line."""
    if isinstance(exc, StudioError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file — check the path"
    where = (exc.filename if isinstance(exc, OSError) else None) or settings().db_path
    translated = storage_error(exc, where)
    if translated:
        return str(translated)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first} — unexpected; run again with --traceback and report it"


if __name__ == "__main__":
    sys.exit(main())
