"""Releases on a copy of the demo shop: publish, rollback, schedule, conflicts, reconcile, the artifact."""

import os
import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from core import store
from core.errors import ArtifactError, ConflictError, InputError
from core.ranking.rule_sets import draft_with, load_rule_set, save_rule_set
from core.release import releases
from core.release.artifact import FILES, open_live, read_pointer
from core.release.audit import utcnow
from core.release.diff import release_diff
from core.release.roles import SYSTEM, Account, Role
from core.release.state import release_state
from tests.conftest import ACCOUNTS, ROOT


def live_bytes() -> dict[str, bytes]:
    _, artifact = open_live()
    return {name: artifact.file(name).read_bytes() for name in artifact.files()}


def pin_first_item(slot: int = 1) -> str:
    """Save a rule-set version that pins an item (not one the model ranks first)."""
    item = open_live()[1].table("items")["item_id"][7]
    current = load_rule_set()
    save_rule_set(
        draft_with(current, "pin", item_id=item, slot=slot),
        current.version,
        Account("mia", Role.MERCHANDISER),
    )
    return item


@pytest.fixture
def first(shop):
    """Release 1 (no rules), published by the system as the first run does."""
    return releases.publish(SYSTEM, "first", expected_head=None)


def test_publish_then_rollback_restores_byte_identical_content(first, actor):
    mia = actor("mia")
    before = live_bytes()
    pin_first_item()
    second = releases.publish(mia, "pin an item", expected_head=first.release_id)
    assert live_bytes()["rules.json"] != before["rules.json"]
    back = releases.rollback(mia, first.release_id, "undo the pin", expected_head=second.release_id)
    assert live_bytes() == before
    assert (back.kind, back.rollback_of, back.artifact) == ("rollback", first.release_id, first.artifact)


def test_the_artifact_holds_what_the_ranking_reads(first):
    from core.model_runs import active_run
    from core.ranking.homepage import shop_context

    entry, artifact = open_live()
    ctx = shop_context()
    assert set(FILES) <= set(artifact.files())
    run_files = {f"model/{p.name}" for p in Path(active_run()["path"]).iterdir() if p.is_file()}
    assert run_files == {name for name in artifact.files() if name.startswith("model/")}
    assert artifact.run_id == ctx.active.run_id
    assert artifact.table("items")["item_id"].to_list() == ctx.active.catalog.vocab.item_ids
    history = artifact.table("history")
    assert history.height == sum(len(s) for s in ctx.steps.items)
    assert history.filter(history["user_id"] == ctx.steps.user_ids[0])["item_id"].to_list() == (
        ctx.active.catalog.vocab.decode(ctx.steps.items[0])
    )
    assert artifact.shop_clock == ctx.now
    assert entry.content_hash == first.content_hash


def test_a_changed_byte_fails_verification_and_blocks_a_rollback_to_it(first, shop, actor):
    mia = actor("mia")
    second = releases.publish(mia, "again", expected_head=first.release_id)
    rules = shop / "releases" / first.artifact / "rules.json"
    rules.write_bytes(rules.read_bytes().replace(b"default", b"defaulT"))
    with pytest.raises(ArtifactError, match="rules.json does not match its sha256"):
        releases.rollback(mia, first.release_id, "to a damaged one", expected_head=second.release_id)
    assert release_state().live.release_id == second.release_id


def test_a_file_the_manifest_does_not_list_fails_verification(first, shop):
    (shop / "releases" / first.artifact / "extra.parquet").write_bytes(b"slipped in")
    with pytest.raises(ArtifactError, match="does not list"):
        open_live()


def test_a_name_outside_the_manifest_is_refused(first):
    with pytest.raises(ArtifactError, match="lists no file"):
        open_live()[1].file("../../shop.duckdb")


def test_a_stale_diff_is_refused_with_who_published_in_between(first, actor):
    diff = release_diff()
    releases.publish(actor("pam"), "in between", expected_head=diff.head_id)
    with pytest.raises(ConflictError, match="published by pam .* after your diff was computed"):
        releases.publish(actor("mia"), "late", expected_head=diff.head_id, expected_draft=diff.draft)


def test_a_draft_saved_after_the_review_is_refused(first, actor):
    diff = release_diff()
    pin_first_item()
    with pytest.raises(ConflictError, match="the draft changed since you reviewed it"):
        releases.publish(actor("mia"), "late", expected_head=diff.head_id, expected_draft=diff.draft)


def test_a_scheduled_release_goes_live_at_its_time(first, actor):
    start = utcnow() + timedelta(hours=2)
    pin_first_item()
    scheduled = releases.publish(actor("mia"), "tonight", expected_head=first.release_id, starts_at=start)
    assert release_state().live.release_id == first.release_id
    assert [r.release_id for r in release_state().upcoming] == [scheduled.release_id]
    pointer = read_pointer()
    assert pointer.entry_at().release_id == first.release_id
    later = start.replace(tzinfo=pointer.timeline[0].published_at.tzinfo) + timedelta(minutes=1)
    assert pointer.entry_at(later).release_id == scheduled.release_id
    assert release_state(now=start + timedelta(minutes=1)).live.release_id == scheduled.release_id
    assert releases.check_consistency(now=start + timedelta(minutes=1)) == []  # nobody had to rewrite it


def test_a_cancelled_schedule_never_goes_live(first, actor):
    start = utcnow() + timedelta(hours=2)
    scheduled = releases.publish(actor("mia"), "tonight", expected_head=first.release_id, starts_at=start)
    releases.cancel_scheduled(actor("mia"), scheduled.release_id, "not tonight after all")
    assert release_state(now=start + timedelta(hours=1)).live.release_id == first.release_id
    assert len(read_pointer().timeline) == 1


def test_a_past_start_time_is_refused(first, actor):
    with pytest.raises(InputError, match="has passed"):
        releases.publish(actor("mia"), "yesterday", expected_head=1, starts_at=utcnow() - timedelta(hours=1))


def test_of_two_concurrent_publishes_in_threads_one_wins(first, actor):
    mia, pam = actor("mia"), actor("pam")
    outcomes: dict[str, object] = {}

    def publish(account):
        try:
            outcomes[account.username] = releases.publish(account, "race", expected_head=first.release_id)
        except ConflictError as exc:
            outcomes[account.username] = exc

    threads = [threading.Thread(target=publish, args=(a,)) for a in (mia, pam)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    kinds = sorted(type(o).__name__ for o in outcomes.values())
    assert kinds == ["ConflictError", "Release"]
    assert releases.check_consistency() == []


def test_of_two_concurrent_publishes_in_processes_one_wins(first, shop):
    env = os.environ | {"HS_DATA": str(shop), "HS_DB": str(shop / "shop.duckdb")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "core", "publish", "--note", f"race {name}", "--expect-release", "1"],
            cwd=ROOT,
            env=env | {"HS_USER": name, "HS_PASSWORD": ACCOUNTS[name][1]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("mia", "pam")
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2]
    refusal = next(err for code, err in results if code == 2)
    assert "after your diff was computed" in refusal
    # one line says why; on a busy machine the loser may first say it waits for the database
    said = [line for line in refusal.strip().splitlines() if not line.startswith("waiting for shop.duckdb")]
    assert len(said) == 1
    assert releases.check_consistency() == []


def test_reconcile_repairs_what_a_crash_leaves(first, shop):
    root = shop / "releases"
    (root / "2").mkdir()  # an artifact renamed into place whose row never committed
    (root / ".tmp-deadbeef").mkdir()  # a write cut short
    (root / "live").write_text(read_pointer().to_json().replace('"release_id": 1', '"release_id": 9'))
    assert len(releases.check_consistency()) == 3
    done = releases.reconcile()
    assert len(done) == 3
    assert releases.check_consistency() == []


def test_activating_a_run_changes_the_draft_not_what_shoppers_get(first, shop, actor):
    from core.model_runs import activate_run, active_run

    run = active_run()
    copy = shop / "models" / "copy-run"
    shutil.copytree(run["path"], copy)
    with store.transaction() as con:
        con.execute(
            "INSERT INTO model_runs (run_id, created_at, kind, stage, status, path, active) "
            "VALUES ('copy-run', now(), 'lstm', 'pretrain', 'done', ?, FALSE)",
            [str(copy)],
        )
    activate_run("copy-run", actor("ada"))
    assert open_live()[1].run_id == run["run_id"]
    diff = release_diff()
    assert diff.model_changed
    releases.publish(actor("mia"), "the new model", expected_head=diff.head_id, expected_draft=diff.draft)
    assert open_live()[1].run_id == "copy-run"
