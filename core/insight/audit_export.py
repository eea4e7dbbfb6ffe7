"""The audit report as pictures and files: plotly figures, a CSV safe to open in a spreadsheet, and a
self-contained HTML file (plotly.js inlined: it opens with no network).

CSV injection (OWASP): a text cell that starts with ``= + - @``, a tab, a carriage return or a line feed is
read as a formula by spreadsheet programs; such cells get a leading ``'`` and every text cell is quoted.
Numbers are written as numbers (a negative number is not a formula).
"""

from __future__ import annotations

import csv
import html
import io

import plotly.graph_objects as go
import polars as pl

from core.insight.audit_report import AuditReport, ListAudit, group_phrase

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
CSV_COLUMNS = (
    "list",
    "section",
    "dimension",
    "group",
    "metric",
    "value",
    "target",
    "ci_low",
    "ci_high",
    "note",
)
COLORS = {"model": "#5B6170", "draft": "#E4572E", "live": "#2E86AB"}
LORENZ_POINTS = 400  # enough for a smooth curve; the full curve has one point per item


def neutralise(cell):
    """A text cell that a spreadsheet would run as a formula gets a leading ``'``; other values pass."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def report_rows(report: AuditReport) -> list[dict]:
    """The whole report as long rows (one number per row), in ``CSV_COLUMNS``."""
    rows: list[dict] = []
    about = (
        ("population", report.population),
        ("grouping", report.grouping),
        ("target", report.target),
        ("as of", report.now.isoformat(sep=" ", timespec="minutes")),
    )
    for key, value in about:
        rows.append(_row(list="", section="about", metric=key, note=value))
    for a in report.lists.values():
        rows.extend(_list_rows(a))
    return rows


def _row(**cells) -> dict:
    return {c: cells.get(c) for c in CSV_COLUMNS}


def _list_rows(a: ListAudit) -> list[dict]:
    row = lambda section, **cells: _row(list=a.name, section=section, **cells)  # noqa: E731
    rows = []
    for dim, shares in a.exposure.items():
        for g, e, t in shares.select("group", "exposure_share", "target_share").iter_rows():
            rows.append(row("exposure", dimension=dim, group=g, metric="exposure_share", value=e, target=t))
        rows += [row("exposure", dimension=dim, metric=k, value=v) for k, v in a.disparity[dim].items()]
    for metric, value in (
        ("gini_items", a.gini_items),
        ("gini_sellers", a.gini_sellers),
        (f"coverage@{a.k}", a.coverage),
    ):
        rows.append(row("concentration", metric=metric, value=value))
    rows.append(row("popularity", metric="arp", value=a.arp))
    rows.append(row("popularity", metric="aplt", value=a.aplt, target=a.tail_interaction_share))
    for g, lift in a.lift.select("group", "lift").iter_rows():
        rows.append(row("popularity", dimension=a.grouping, group=g, metric="popularity_lift", value=lift))
    q = a.quality
    for r in q.table.iter_rows(named=True) if q is not None else []:
        for m in ("hr", "ndcg"):
            rows.append(
                row(
                    "quality",
                    dimension=q.by,
                    group=r["group"],
                    metric=f"{m}@{q.k}",
                    value=r[m],
                    ci_low=r[f"{m}_lo"],
                    ci_high=r[f"{m}_hi"],
                )
            )
    for metric, gap in q.ugf.items() if q is not None else []:
        rows.append(row("quality", dimension=q.by, metric=f"ugf_{metric}@{q.k}", value=gap))
    rows.append(row("calibration", metric="mean_kl", value=a.calibration))
    return rows + [row("flag", note=sentence) for sentence in a.flags]


def report_csv(report: AuditReport) -> str:
    """The report as CSV text, every text cell neutralised against formula injection."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writeheader()
    for row in report_rows(report):
        writer.writerow({k: neutralise("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


def exposure_figure(report: AuditReport, dimension: str = "seller_tier") -> go.Figure:
    """Exposure share by item group for each list, with the target share as a marker."""
    fig = go.Figure()
    target = None
    for name, a in report.lists.items():
        shares = a.exposure[dimension]
        fig.add_bar(
            x=shares["group"].to_list(),
            y=shares["exposure_share"].to_list(),
            name=a.label,
            marker_color=COLORS.get(name),
        )
        target = shares
    if target is not None:
        fig.add_scatter(
            x=target["group"].to_list(),
            y=target["target_share"].to_list(),
            mode="markers",
            name=f"target ({report.target} share)",
            marker=dict(symbol="line-ew-open", size=36, color="black", line=dict(width=3)),
        )
    fig.update_layout(
        barmode="group",
        title=f"Exposure share by {dimension.replace('_', ' ')} against target",
        yaxis_tickformat=".0%",
        legend_orientation="h",
    )
    return fig


def lorenz_figure(report: AuditReport) -> go.Figure:
    """Lorenz curve of item exposure for each list; the Gini index in the legend."""
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="equal exposure", line=dict(dash="dot", color="gray")
    )
    for name, a in report.lists.items():
        curve = a.lorenz_items.gather_every(max(1, a.lorenz_items.height // LORENZ_POINTS))
        curve = pl.concat([curve, a.lorenz_items.tail(1)]).unique(maintain_order=True)
        fig.add_scatter(
            x=curve["population_share"].to_list(),
            y=curve["exposure_share"].to_list(),
            mode="lines",
            name=f"{a.label} (Gini {a.gini_items:.2f})",
            line=dict(color=COLORS.get(name)),
        )
    fig.update_layout(
        title="Lorenz curve of item exposure",
        xaxis_title="share of items (least exposed first)",
        yaxis_title="share of exposure",
        xaxis_tickformat=".0%",
        yaxis_tickformat=".0%",
    )
    return fig


def long_tail_figure(report: AuditReport) -> go.Figure:
    """Share of homepage slots given to long-tail items (APLT) against the tail's share of interactions."""
    lists = list(report.lists.values())
    fig = go.Figure()
    fig.add_bar(
        x=[a.label for a in lists],
        y=[a.aplt for a in lists],
        name="long-tail share of slots (APLT)",
        marker_color=[COLORS.get(a.name) for a in lists],
    )
    fig.add_scatter(
        x=[a.label for a in lists],
        y=[a.tail_interaction_share for a in lists],
        mode="markers",
        name="long tail's share of interactions",
        marker=dict(symbol="line-ew-open", size=60, color="black", line=dict(width=3)),
    )
    tail = lists[0].tail_catalog_share if lists else 0.0
    fig.update_layout(
        title=f"Long-tail share (the long tail is {tail:.0%} of the catalog)",
        yaxis_tickformat=".0%",
        legend_orientation="h",
    )
    return fig


def quality_figure(report: AuditReport, metric: str = "hr") -> go.Figure:
    """HR@10 (or NDCG@10) on held-out next events per user group, with 95 % bootstrap intervals."""
    fig = go.Figure()
    for name, a in report.lists.items():
        if a.quality is None:
            continue
        t = a.quality.table
        has_ci = t[f"{metric}_lo"].null_count() == 0
        error = (
            dict(
                type="data",
                symmetric=False,
                array=(t[f"{metric}_hi"] - t[metric]).to_list(),
                arrayminus=(t[metric] - t[f"{metric}_lo"]).to_list(),
            )
            if has_ci
            else None
        )
        fig.add_bar(
            x=[group_phrase(a.quality.by, g) for g in t["group"]],
            y=t[metric].to_list(),
            name=a.label,
            error_y=error,
            marker_color=COLORS.get(name),
        )
    label = {"hr": "HR", "ndcg": "NDCG"}.get(metric, metric)
    fig.update_layout(
        barmode="group",
        title=f"{label}@10 on held-out next events by {report.grouping}, 95% intervals",
        legend_orientation="h",
    )
    return fig


def figures(report: AuditReport) -> dict[str, go.Figure]:
    """Every figure of the report, by name, in the order they are shown."""
    out = {f"exposure_{d}": exposure_figure(report, d) for d in ("seller_tier", "item_age", "top_category")}
    out["lorenz"] = lorenz_figure(report)
    out["long_tail"] = long_tail_figure(report)
    if any(a.quality is not None for a in report.lists.values()):
        out["quality"] = quality_figure(report)
    return out


def _summary_table(report: AuditReport) -> str:
    head = "".join(f"<th>{html.escape(a.label)}</th>" for a in report.lists.values())
    rows = [
        ("Gini of item exposure", lambda a: f"{a.gini_items:.3f}"),
        ("Gini of seller exposure", lambda a: f"{a.gini_sellers:.3f}"),
        ("Catalog coverage@K", lambda a: f"{a.coverage:.1%} (K={a.k})"),
        ("ARP (mean interactions per shown item)", lambda a: f"{a.arp:,.1f}"),
        ("APLT (long-tail share of slots)", lambda a: f"{a.aplt:.1%}"),
        ("UGF: HR@10 best − worst group", lambda a: f"{a.quality.ugf['hr']:.3f}" if a.quality else "–"),
        ("Calibration: mean KL (nats)", lambda a: f"{a.calibration:.3f}"),
    ]
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{html.escape(f(a))}</td>" for a in report.lists.values())
        + "</tr>"
        for name, f in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def report_html(report: AuditReport) -> str:
    """One HTML file with the summary, the flags and every figure; plotly.js is inlined (no network)."""
    esc = html.escape
    flags = (
        "".join(f"<li><b>{esc(label)}</b>: {esc(text)}</li>" for label, text in report.flags)
        or "<li>none</li>"
    )
    plots = []
    for n, fig in enumerate(figures(report).values()):
        plots.append(fig.to_html(full_html=False, include_plotlyjs=(n == 0), include_mathjax=False))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Homepage bias audit</title>"
        "<style>body{font-family:sans-serif;margin:24px;max-width:1100px}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h1>Homepage bias audit</h1><p>{esc(report.population)}; as of {report.now:%Y-%m-%d %H:%M}; "
        f"user groups by {esc(report.grouping)}; target: {esc(report.target)} share.</p>"
        f"<h2>Summary</h2>{_summary_table(report)}<h2>Flags</h2><ul>{flags}</ul>"
        "<p>Formulas, sources and the flag rules: docs/METRICS.md.</p>"
        f"<h2>Figures</h2>{''.join(plots)}</body></html>"
    )
