"""The audit report: flags in plain words, the CSV (safe against formula injection) and the HTML file."""

import csv
import io
from datetime import datetime

import polars as pl
import pytest

from core.errors import InputError
from core.insight.audit_export import figures, neutralise, report_csv, report_html
from core.insight.audit_report import AuditInputs, Thresholds, build_report

NOW = datetime(2026, 7, 1)
HOSTILE_BRAND = '=HYPERLINK("http://evil.example","click")'
HOSTILE_TIER = "@SUM(1+1)"
SCRIPT = "</script><script>alert(1)</script>"


def shop(tier_small: str = "small", brand: str = "b1", category: str = "x.a") -> AuditInputs:
    """Ten items, four shoppers; the model shows only large sellers' items, the draft mixes small ones in."""
    ids = [f"i{n}" for n in range(10)]
    items = pl.DataFrame(
        {
            "item_id": ids,
            "seller_id": [f"s{n % 4}" for n in range(10)],
            "seller_tier": [tier_small if n % 2 else "large" for n in range(10)],
            "brand": [brand if n < 5 else "b2" for n in range(10)],
            "category": [category if n < 3 else "y.b" for n in range(10)],
            "created_at": [datetime(2026, 1, 1)] * 10,
            "in_stock": [True] * 10,
            "interactions": [100, 10, 90, 5, 80, 3, 2, 1, 1, 1],  # head: i0, i2, i4
        }
    )
    users = [f"u{n}" for n in range(4)]

    def pages(item_ids: list[str]) -> pl.DataFrame:
        rows = [(u, r + 1, i) for u in users for r, i in enumerate(item_ids)]
        return pl.DataFrame(rows, schema=["user_id", "rank", "item_id"], orient="row")

    return AuditInputs(
        homepages={"model": pages(["i0", "i2", "i4"]), "draft": pages(["i0", "i1", "i3"])},
        items=items,
        users=pl.DataFrame(
            {"user_id": users, "first_seen": [datetime(2025, 1, 1)] * 4, "region": ["n", "s"] * 2}
        ),
        history=pl.DataFrame(
            {"user_id": users * 2, "item_id": ["i5", "i6", "i7", "i8", "i0", "i1", "i2", "i3"]}
        ),
        held_out=pl.DataFrame({"user_id": users, "item_id": ["i0", "i1", "i9", "i2"]}),
        now=NOW,
        population="4 test shoppers",
    )


@pytest.fixture(scope="module")
def report():
    return build_report(shop(), grouping="region", n_boot=10)


def test_flag_names_the_left_out_group_with_numbers(report):
    assert "small sellers get 0% of exposure against 50% of the catalog" in report.lists["model"].flags


def test_no_flag_when_the_group_gets_its_share(report):
    assert not [f for f in report.lists["draft"].flags if f.startswith("small sellers")]


def test_flags_are_labelled_by_list(report):
    assert (
        "unconstrained model",
        "small sellers get 0% of exposure against 50% of the catalog",
    ) in report.flags


def test_a_looser_threshold_drops_the_flag():
    loose = build_report(shop(), grouping="region", n_boot=0, thresholds=Thresholds(exposure_ratio=0.0))
    assert not [f for f in loose.lists["model"].flags if "sellers get" in f]


def test_long_tail_flag(report):
    assert any(f.startswith("long-tail items fill 0% of homepage slots") for f in report.lists["model"].flags)


def test_unknown_grouping_is_an_input_error():
    with pytest.raises(InputError, match="grouping"):
        build_report(shop(), grouping="star sign")


def test_neutralise_prefixes_formula_starts():
    assert [neutralise(s) for s in ("=1", "+1", "-1", "@a", "\tx", "\rx", "ok")] == [
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\tx",
        "'\rx",
        "ok",
    ]


def test_neutralise_leaves_numbers_alone():
    assert neutralise(-0.25) == -0.25


@pytest.fixture(scope="module")
def hostile_csv():
    hostile = build_report(
        shop(tier_small=HOSTILE_TIER, brand=HOSTILE_BRAND, category="-cmd.x"), "region", n_boot=0
    )
    return list(csv.reader(io.StringIO(report_csv(hostile))))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_csv_has_no_cell_a_spreadsheet_would_run(hostile_csv):
    risky = [
        c
        for row in hostile_csv
        for c in row
        if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(c)
    ]
    assert risky == []


def test_csv_keeps_the_hostile_brand_readable(hostile_csv):
    assert "'" + HOSTILE_BRAND in [c for row in hostile_csv for c in row]


def test_csv_neutralises_a_flag_that_starts_with_the_hostile_tier(hostile_csv):
    notes = [row[-1] for row in hostile_csv if row[1] == "flag"]
    assert any(n.startswith("'" + HOSTILE_TIER + " sellers get") for n in notes)


def test_csv_keeps_negative_numbers_as_numbers(hostile_csv):
    gaps = [row[5] for row in hostile_csv if row[4] == "popularity_lift"]
    assert gaps and all(_is_number(g) for g in gaps)


@pytest.fixture(scope="module")
def html_text():
    return report_html(build_report(shop(tier_small=SCRIPT), "region", n_boot=10))


def test_html_is_self_contained(html_text):
    assert "<script src" not in html_text.lower()


def test_html_inlines_plotly(html_text):
    assert "Plotly.newPlot" in html_text and len(html_text) > 1_000_000


def test_html_does_not_let_a_name_close_the_script(html_text):
    assert SCRIPT not in html_text


def test_html_shows_the_flags(html_text):
    assert "&lt;/script&gt;" in html_text  # the hostile tier, escaped, in a flag sentence


def test_figures_cover_exposure_lorenz_long_tail_and_quality(report):
    assert {"exposure_seller_tier", "lorenz", "long_tail", "quality"} <= set(figures(report))


def test_lorenz_legend_carries_the_gini(report):
    names = [trace.name for trace in figures(report)["lorenz"].data]
    assert f"unconstrained model (Gini {report.lists['model'].gini_items:.2f})" in names


def test_a_group_only_slightly_short_is_not_flagged():
    strict_gap = build_report(shop(), grouping="region", n_boot=0, thresholds=Thresholds(min_gap=0.6))
    assert not [f for f in strict_gap.lists["model"].flags if "sellers get" in f]  # 50 points short, not 60
