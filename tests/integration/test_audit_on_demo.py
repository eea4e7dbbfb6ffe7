"""The bias audit on the small demo shop: the population runner, a fairness rule's effect, the CLI, the page."""

import csv
import io
from pathlib import Path

import polars as pl
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from core.errors import InputError
from core.release.roles import SYSTEM, Account, Role

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = 120


def fairness_draft(p: float = 0.5):
    """A draft with one fairness rule for small sellers, in the rule format ``core.ranking.rules`` validates
    today (the one place to adapt when rule kinds become modules)."""
    from core.ranking.rules import Rule, RuleSet, validate

    rule = Rule(
        rule_id="fair-small",
        kind="fairness",
        params={"condition": {"seller_tier": ["small"]}, "p": p, "alpha": 0.1},
    )
    draft = RuleSet(rule_set_id="audit-test", version=1, rules=[rule])
    assert validate(draft) == []
    return draft


@pytest.fixture(scope="module")
def fair_inputs(demo_shop):
    mp = pytest.MonkeyPatch()
    mp.setenv("HS_DATA", str(demo_shop))
    mp.setenv("HS_DB", str(demo_shop / "shop.duckdb"))
    from core.insight.audit_population import audit_inputs

    try:
        yield audit_inputs(
            ("model", "draft"),
            fairness_draft(),
            sample=SAMPLE,
            seed=4,
            actor=Account("pam", Role.PRODUCT_MANAGER),
        )
    finally:
        mp.undo()


def test_population_is_the_seeded_sample(fair_inputs):
    assert fair_inputs.homepages["model"]["user_id"].n_unique() == SAMPLE


def test_homepage_frames_have_the_plain_schema(fair_inputs):
    frame = fair_inputs.homepages["draft"]
    assert frame.schema == pl.Schema({"user_id": pl.Utf8, "rank": pl.Int64, "item_id": pl.Utf8})


def test_every_audited_shopper_has_a_held_out_next_step(fair_inputs):
    audited = set(fair_inputs.homepages["model"]["user_id"])
    assert set(fair_inputs.held_out["user_id"]) == audited


def test_held_out_copy_leaves_each_users_last_step_out(use_demo):
    from core import store
    from core.insight.audit_population import holdout_store

    path, held_out = holdout_store()
    assert store.scalar("SELECT count(*) FROM events", db_path=path) < store.scalar(
        "SELECT count(*) FROM events"
    )
    assert held_out.height == store.scalar(
        "SELECT count(DISTINCT user_id) FROM events WHERE event_type <> 'review'"
    )


def test_history_has_no_event_at_or_after_the_held_out_step(use_demo):
    from core import store
    from core.data.sequences import load_sequences
    from core.insight.audit_population import holdout_store

    path, _ = holdout_store()
    steps = load_sequences()
    last_step = pl.DataFrame({"user_id": steps.user_ids, "step": [float(t[-1]) for t in steps.ts]})
    kept = store.query("SELECT user_id, max(epoch(ts)) AS kept FROM events GROUP BY user_id", db_path=path)
    late = kept.join(last_step, on="user_id").filter(pl.col("kept") >= pl.col("step"))
    assert late.height == 0


def test_same_seed_same_population(use_demo):
    from core.insight.audit_population import population

    ids = [f"u{n}" for n in range(50)]
    assert population(ids, 10, seed=2) == population(ids, 10, seed=2)


def test_fairness_rule_raises_small_sellers_exposure(fair_inputs):
    from core.insight.audit import exposure_share, item_groups

    items = item_groups(fair_inputs.items, fair_inputs.now)
    small = {
        name: exposure_share(frame, items, "seller_tier").filter(pl.col("group") == "small")[
            "exposure_share"
        ][0]
        for name, frame in fair_inputs.homepages.items()
    }
    assert small["draft"] > small["model"]


def test_live_is_not_there_yet(use_demo):
    from core.insight.audit_population import audit_inputs

    with pytest.raises(InputError, match="no release is live yet"):
        audit_inputs(("model", "live"), sample=5, actor=Account("pam", Role.PRODUCT_MANAGER))


@pytest.fixture
def pam_at_the_shell(monkeypatch):
    """The CLI signs in as HS_USER: a product manager."""
    from tests.conftest import ACCOUNTS

    monkeypatch.setenv("HS_USER", "pam")
    monkeypatch.setenv("HS_PASSWORD", ACCOUNTS["pam"][1])


@pytest.mark.parametrize("name, role", [("mia", Role.MERCHANDISER), ("vic", Role.VIEWER)])
def test_only_a_product_manager_audits_quality(use_demo, name, role):
    from core.errors import PermissionDenied
    from core.insight.audit_population import audit_inputs

    with pytest.raises(PermissionDenied, match="product manager"):
        audit_inputs(("model",), sample=5, actor=Account(name, role))


def test_cli_writes_an_html_report(use_demo, pam_at_the_shell, tmp_path):
    from core.__main__ import main

    out = tmp_path / "report.html"
    assert main(["audit", "--sample", "40", "--n-boot", "10", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_writes_a_csv_report(use_demo, pam_at_the_shell, tmp_path):
    from core.__main__ import main

    out = tmp_path / "report.csv"
    assert main(["audit", "--against", "model", "--sample", "40", "--n-boot", "0", "--out", str(out)]) == 0
    header = next(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert header[:3] == ["list", "section", "dimension"]


def test_cli_refuses_an_unknown_format_before_any_work(use_demo, pam_at_the_shell, tmp_path, capsys):
    from core.__main__ import main

    assert main(["audit", "--out", str(tmp_path / "report.pdf")]) == 2
    assert "end the path with .html or .csv" in capsys.readouterr().err


def test_cli_live_says_no_release_is_live(use_demo, pam_at_the_shell, tmp_path, capsys):
    from core.__main__ import main

    out = tmp_path / "report.html"
    assert main(["audit", "--against", "live", "--sample", "5", "--out", str(out)]) == 2
    assert "no release is live yet" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def downloads(monkeypatch):
    """The bytes the page hands to its download buttons, by file name."""
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        files[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return files


def test_audit_page_renders_and_exports(session_of, downloads, tmp_path):
    at = AppTest.from_file(str(ROOT / "pages/audit.py"), default_timeout=300)
    at.session_state["session_token"] = session_of("pam")
    at.run()
    at.number_input(key="audit_sample").set_value(60)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) >= 5
    assert {b.label for b in at.download_button} == {"Download CSV", "Download HTML report"}
    report = tmp_path / "audit.html"
    report.write_bytes(downloads["audit.html"])
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_audit_page_before_a_run_says_what_to_do(session_of):
    at = AppTest.from_file(str(ROOT / "pages/audit.py"), default_timeout=120)
    at.session_state["session_token"] = session_of("pam")
    at.run()
    assert any("run the audit" in i.value for i in at.info)


def test_audit_page_refuses_a_merchandiser(session_of):
    at = AppTest.from_file(str(ROOT / "pages/audit.py"), default_timeout=120)
    at.session_state["session_token"] = session_of("mia")
    at.run()
    assert any("may not run the bias audit" in e.value for e in at.error)
    assert not at.button


def test_a_failed_hold_out_build_leaves_nothing_behind(db, monkeypatch):
    from core import store
    from core.data.demo import build_demo_shop
    from core.insight.audit_population import holdout_store

    build_demo_shop(users=60, items=40, days=5, seed=1, actor=SYSTEM)
    events = store.scalar("SELECT count(*) FROM events")
    with monkeypatch.context() as patch:
        patch.setattr(
            pl.DataFrame, "write_parquet", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
        )
        with pytest.raises(OSError, match="disk full"):
            holdout_store()
    assert sorted((db.parent / "audit").iterdir()) == []
    assert store.scalar("SELECT count(*) FROM events") == events
