"""Privacy: pseudonyms for viewers, and forgetting a shopper in the store and in every later artifact."""

from core import store
from core.release import privacy, releases
from core.release.artifact import open_live
from core.release.roles import SYSTEM, Account, Role


def test_a_pseudonym_is_stable_distinct_and_hides_the_id(db):
    a, b = privacy.pseudonym("u00042"), privacy.pseudonym("u00043")
    assert a == privacy.pseudonym("u00042")
    assert a != b
    assert "u00042" not in a


def test_viewers_see_pseudonyms_and_merchandisers_ids(db):
    assert privacy.shopper_label(Account("vic", Role.VIEWER), "u00042") == privacy.pseudonym("u00042")
    assert privacy.shopper_label(Account("mia", Role.MERCHANDISER), "u00042") == "u00042"


def test_forget_user_erases_the_shopper_and_keeps_them_out_of_later_artifacts(shop, actor):
    releases.publish(SYSTEM, "holds everyone", expected_head=None)
    shopper = store.scalar("SELECT min(user_id) FROM events")
    events = store.scalar("SELECT count(*) FROM events WHERE user_id = ?", [shopper])
    lines = {7: f"2026-01-01,{shopper},i1,clik", 8: f"2026-01-01,{shopper}0,i1,clik"}  # theirs, another's
    with store.transaction() as con:
        for line_no, raw in lines.items():
            con.execute("INSERT INTO rejects VALUES (1, ?, ?, 'bad event type')", [line_no, raw])
    naming = sum(shopper in raw.split(",") for raw in store.query("SELECT raw FROM rejects")["raw"])
    report = privacy.forget_user(actor("ada"), shopper)
    assert report.removed == {"events": events, "user rows": 1, "rejected raw lines": naming}
    assert store.scalar("SELECT count(*) FROM rejects WHERE raw = ?", [lines[8]]) == 1
    assert store.scalar("SELECT count(*) FROM events WHERE user_id = ?", [shopper]) == 0
    assert any("not retrained" in line for line in report.lines())
    assert report.artifacts_holding == ["1"]  # the published one still has them, and says so
    with store.transaction() as con:  # an old log loaded again brings one event back
        con.execute("INSERT INTO events (ts, user_id, item_id, event_type) SELECT ts, ?, item_id, event_type "
                    "FROM events LIMIT 1", [shopper])  # fmt: skip
    releases.publish(actor("mia"), "without them", expected_head=1)
    artifact = open_live()[1]
    assert shopper not in artifact.table("history")["user_id"].to_list()
    assert shopper not in artifact.table("users")["user_id"].to_list()


def test_a_forgotten_shopper_stays_out_of_every_later_load(db, tmp_path):
    import gzip

    from core.data.ingest import ingest_events
    from tests.unit.test_ingest import NATIVE

    first = tmp_path / "log.csv"
    first.write_text(NATIVE)
    ingest_events(first, actor=SYSTEM)
    privacy.forget_user(SYSTEM, "u1")
    # the same shoppers a day later, in the bulk CSV path and in the line-by-line path (gzip)
    later = NATIVE.replace("2024-05-0", "2024-06-0")
    csv_file, gz_file = tmp_path / "later.csv", tmp_path / "later2.csv.gz"
    csv_file.write_text(later)
    gz_file.write_bytes(gzip.compress(later.replace("2024-06-0", "2024-07-0").encode()))
    for path, loaded_u2 in ((csv_file, 2), (gz_file, 4)):
        r = ingest_events(path, actor=SYSTEM)
        assert (r.rows_read, r.loaded, r.forgotten, r.rejected, r.duplicates) == (6, 2, 4, 0, 0)
        assert any("4 event(s) of 1 forgotten shopper(s) left out" in n for n in r.notes)
        assert store.scalar("SELECT count(*) FROM events WHERE user_id = 'u1'") == 0
        assert store.scalar("SELECT count(*) FROM users WHERE user_id = 'u1'") == 0
        assert store.scalar("SELECT count(*) FROM events WHERE user_id = 'u2'") == loaded_u2 + 2
        assert "forgotten" in store.scalar("SELECT message FROM ingests WHERE ingest_id = ?", [r.ingest_id])
