"""``python -m core audit``: the bias audit from the shell, the same report as the Audit page.

python -m core audit --against model,draft [--sample N] [--seed S] [--group activity]
                     [--target catalog|relevance] [--out report.html|report.csv]
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InputError
from core.insight.audit import LISTS, USER_DIMENSIONS  # light: polars and numpy only

FORMATS = (".html", ".csv")


def add_audit_command(sub, bar) -> None:
    """Register ``audit`` on the CLI's subparsers; ``bar(desc)`` makes the progress bar (the CLI's tqdm)."""
    p = sub.add_parser("audit", help="bias audit: exposure, popularity bias, quality by user group")
    p.add_argument(
        "--against", default="model,draft", help=f"comma-separated lists to compare: {', '.join(LISTS)}"
    )
    p.add_argument("--sample", type=int, help="audit a seeded sample of this many shoppers (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", default="activity", choices=USER_DIMENSIONS, help="user grouping for quality")
    p.add_argument(
        "--target", default="catalog", choices=("catalog", "relevance"), help="what a fair share is"
    )
    p.add_argument("--k", type=int, help="homepage length (default: the storefront's)")
    p.add_argument("--n-boot", type=int, help="bootstrap resamples for the intervals (default 1000; 0: none)")
    p.add_argument("--no-holdout", action="store_true", help="audit today's homepages (no quality numbers)")
    p.add_argument("--out", help="write the report: a .html or .csv path")
    p.set_defaults(func=lambda args: cmd_audit(args, bar))


def _out_path(out: str | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise InputError(
            f"cannot write a {path.suffix or 'suffix-less'} report",
            file=out,
            fix="end the path with .html or .csv",
        )
    if not path.parent.is_dir():
        raise InputError("the folder does not exist", file=out, fix="create the folder or write elsewhere")
    return path


def cmd_audit(args, bar) -> int:
    from core.insight.audit_export import report_csv, report_html
    from core.insight.audit_population import audit_inputs
    from core.insight.audit_quality import N_BOOT
    from core.insight.audit_report import build_report
    from core.release.auth import cli_actor

    out = _out_path(args.out)  # a bad path fails before minutes of work
    against = tuple(a.strip() for a in args.against.split(",") if a.strip())
    with bar("audit") as progress:
        inputs = audit_inputs(
            against,
            actor=cli_actor(),
            sample=args.sample,
            seed=args.seed,
            k=args.k,
            holdout=not args.no_holdout,
            progress=progress,
        )
        report = build_report(
            inputs,
            args.group,
            args.target,
            seed=args.seed,
            n_boot=N_BOOT if args.n_boot is None else args.n_boot,
        )
        progress(1.0, "done")
    print(f"{report.population}; user groups by {report.grouping}; target: {report.target} share")
    for a in report.lists.values():
        hr = f", HR@10 {a.quality.overall['hr']:.3f} (UGF {a.quality.ugf['hr']:.3f})" if a.quality else ""
        print(
            f"{a.label}: item Gini {a.gini_items:.3f}, coverage@{a.k} {a.coverage:.1%}, APLT {a.aplt:.1%}{hr}"
        )
    for label, sentence in report.flags:
        print(f"flag ({label}): {sentence}")
    if out is not None:
        text = report_html(report) if out.suffix.lower() == ".html" else report_csv(report)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)  # whole or not at all
        print(f"wrote {out}")
    return 0
