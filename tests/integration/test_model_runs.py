"""Model runs on a real DuckDB store: train, record, activate, fail safely, cold-start new items."""

import dataclasses
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import torch

from core import store
from core.errors import InputError, NotFoundError
from core.model_runs import (
    activate_run,
    active_run,
    load_active_model,
    load_run_model,
    runs_table,
    train_run,
)
from core.release.roles import SYSTEM
from core.training import slice_mask
from models.lstm import LSTMConfig
from models.transformer import TransformerConfig

SMALL = dict(dim=16, max_epochs=2, batch_size=64)


def make_shop(n_users=200, n_items=60, seed=0):
    """A tiny shop where item i is usually followed by item i+7: something learnable."""
    rng = np.random.default_rng(seed)
    shop_items = pl.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in range(n_items)],
            "title": [f"Item {i}" for i in range(n_items)],
            "category": [f"top{i % 3}.mid{i % 2}.leaf{i % 5}" for i in range(n_items)],
            "brand": [f"b{i % 4}" for i in range(n_items)],
            "price": rng.lognormal(3, 1, n_items),
        }
    )
    rows, t0 = [], datetime(2026, 10, 1)
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for j in range(int(rng.integers(3, 10))):
            kind = ["view", "click", "add_to_cart", "purchase"][int(rng.integers(4))]
            rows.append(
                (t0 + timedelta(hours=u, minutes=j), f"u{u:03d}", f"i{(start + 7 * j) % n_items:03d}", kind)
            )
    log = pl.DataFrame(rows, schema=["ts", "user_id", "item_id", "event_type"], orient="row")
    with store.transaction() as con:  # frames registered by name: the store does not scan Python variables
        con.register("shop_items", shop_items)
        con.register("log", log)
        con.execute("INSERT INTO items (item_id, title, category, brand, price) SELECT * FROM shop_items")
        con.execute("INSERT INTO events (ts, user_id, item_id, event_type) SELECT * FROM log")
        con.execute(
            "INSERT INTO users (user_id, first_seen, segment) SELECT user_id, min(ts), 'returning' "
            "FROM log GROUP BY 1"
        )


def test_train_records_and_activates(db):
    make_shop()
    seen = []
    run = train_run(
        actor=SYSTEM, config=LSTMConfig(**SMALL), time_budget_s=60, progress=lambda f, m: seen.append(f)
    )
    assert run.active
    assert sorted(p.name for p in run.path.iterdir()) == ["catalog.json", "config.json", "model.pt"]
    assert active_run()["run_id"] == run.run_id
    table = runs_table()
    assert table["status"].to_list() == ["done"]
    assert table["ndcg@10"][0] > table["mostpop ndcg@10"][0]  # the sequence pattern beats popularity
    assert seen and seen[-1] == 1.0


def test_failed_training_leaves_active_run(db, monkeypatch):
    make_shop()
    first = train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), time_budget_s=60)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("core.model_runs.save_model", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), time_budget_s=60)
    assert active_run()["run_id"] == first.run_id
    failed = runs_table().filter(pl.col("status") == "failed")
    assert len(failed) == 1 and "disk full" in failed["message"][0]
    with pytest.raises(InputError):
        activate_run(failed["run_id"][0], SYSTEM)


def test_a_run_loads_as_it_is_served_without_being_activated(db):
    make_shop()
    first = train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), time_budget_s=60)
    second = train_run(actor=SYSTEM, config=TransformerConfig(**SMALL), time_budget_s=60)
    loaded = load_run_model(first.run_id)
    assert (loaded.run_id, loaded.model.name) == (first.run_id, "lstm")
    assert loaded.catalog.vocab.item_ids == load_active_model().catalog.vocab.item_ids
    assert active_run()["run_id"] == second.run_id  # loading changed nothing
    with pytest.raises(NotFoundError, match="no finished model run 'nope'"):
        load_run_model("nope")


def test_finetune_reports_both(db):
    make_shop()
    run = train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), finetune_on="purchases", time_budget_s=60)
    for key in ("slice_pretrained", "slice_finetuned"):  # both measured on the slice's validation set
        assert 0.0 <= run.metrics[key]["ndcg@10"] <= 1.0
    assert run.metrics["slice"] == "purchases"


def test_slice_specs_are_checked(db):
    make_shop()
    from core.data.sequences import load_sequences

    seqs = load_sequences()
    recent = slice_mask("recent:3d", seqs)
    assert all(m.dtype == bool for m in recent)
    assert any(m.any() for m in recent) and not all(m.all() for m in recent)  # some steps in, some out
    from core.jobs import finetune_spec

    assert finetune_spec("purchases", "ignored") == "purchases"
    assert any(m.any() for m in slice_mask(finetune_spec("category:", " top1 "), seqs))
    for bad in ("recent:xd", "category:nowhere", "weekends"):
        with pytest.raises(InputError):
            slice_mask(bad, seqs)


def test_new_catalog_item_is_scored_through_side_features(db):
    make_shop()
    train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), time_budget_s=60)
    before = load_active_model().catalog.n_items
    with store.transaction() as con:
        con.execute(
            "INSERT INTO items (item_id, title, category, brand, price) "
            "VALUES ('brand-new', 'New thing', 'top1.mid0.leaf2', 'b1', 20.0)"
        )
    active = load_active_model()
    assert active.catalog.n_items == before + 1
    idx = active.catalog.vocab.index["brand-new"]
    from core.data.sequences import load_sequences

    seqs = load_sequences(catalog=active.catalog)
    scores = active.model.score(seqs.histories([0], max_len=active.model.max_len))
    assert torch.isfinite(scores[0, idx])


def test_caller_config_is_not_changed(db):
    make_shop()
    config = LSTMConfig(**SMALL)
    before = dataclasses.asdict(config)
    train_run(actor=SYSTEM, config=config, epochs=1, time_budget_s=60)
    assert dataclasses.asdict(config) == before


def test_transformer_run_records_its_kind_and_loads(db):
    make_shop()
    run = train_run(
        actor=SYSTEM, architecture="transformer", config=TransformerConfig(**SMALL), time_budget_s=60
    )
    assert runs_table()["architecture"].to_list() == ["transformer"]
    active = load_active_model()
    assert active.model.name == "transformer"
    assert active.label == f"Transformer (SASRec-style) run {run.run_id}"


def test_unknown_architecture_is_an_input_error(db):
    make_shop()
    with pytest.raises(InputError, match="unknown architecture 'gpt5'"):
        train_run(actor=SYSTEM, architecture="gpt5")


def test_one_shopper_with_three_events_is_a_clear_input_error(db):
    make_shop(n_users=1)
    with pytest.raises(InputError, match="1 shopper"):
        train_run(actor=SYSTEM, config=LSTMConfig(**SMALL))
    assert runs_table()["status"].to_list() == ["failed"]


def test_item_seen_only_as_a_held_out_step_trains(db):
    """Item i999 is only ever some shopper's latest step: MostPop and the model must still rank it."""
    make_shop()
    with store.transaction() as con:
        con.execute(
            "INSERT INTO items (item_id, title, category) VALUES ('i999', 'Held out', 'top0.mid0.leaf0')"
        )
        con.execute(
            "INSERT INTO events (ts, user_id, item_id, event_type) VALUES (?, 'u000', 'i999', 'purchase')",
            [datetime(2027, 1, 1)],
        )
    run = train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), time_budget_s=60)
    assert 0.0 <= run.metrics["mostpop"]["ndcg@10"] <= 1.0


def test_a_failure_to_record_the_failure_is_named(db, monkeypatch):
    make_shop()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    def locked(*a, **k):
        raise OSError("database is read-only")

    monkeypatch.setattr("core.model_runs.save_model", boom)
    monkeypatch.setattr("core.model_runs.store.transaction", locked)
    with pytest.raises(RuntimeError, match="disk full") as info:
        train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), epochs=1, time_budget_s=60)
    assert any(
        "could not be recorded either: OSError: database is read-only" in n for n in info.value.__notes__
    )


def test_blend_run_loads_and_its_parts_add_up(db):
    make_shop()
    run = train_run(actor=SYSTEM, architecture="blend", config=TransformerConfig(**SMALL), time_budget_s=60)
    active = load_active_model()
    assert active.run_id == run.run_id
    assert active.model.name == "blend"
    from core.data.sequences import load_sequences

    h = load_sequences(catalog=active.catalog).histories([0, 1], max_len=active.model.max_len)
    parts = active.model.score_parts(h)
    assert set(parts) <= {"transformer", "transformer-2", "transformer-3", "itemknn", "ease", "mostpop"}
    # named by the parts it holds (a Model-page blend: three transformer seeds)
    assert (
        active.label
        == "Blend (transformer + transformer seed 2 + transformer seed 3 + item-kNN + EASE + popularity) "
        f"run {run.run_id}"
    )
    torch.testing.assert_close(sum(parts.values())[:, 1:], active.model.score(h)[:, 1:])

    # the explanation of a blended slot says what each part added; the lifts add up to the score's
    from core.insight.why import explain_slot
    from core.ranking.shop import shop_context

    ctx = shop_context()
    user = next(iter(ctx.by_user))
    why = explain_slot(user, 1)
    history = ctx.steps.histories([ctx.by_user[user]], max_len=active.model.max_len)
    assert set(why.part_lifts) == set(active.model.score_parts(history))
    row = active.model.score(history)[0]
    lift = float(row[active.catalog.vocab.index[why.item_id]] - row[1:].mean())
    assert sum(why.part_lifts.values()) == pytest.approx(lift, rel=1e-4, abs=1e-4)
    assert (why.parts_sentence is None) == (len(why.part_lifts) == 1)


def test_the_explain_page_says_what_each_part_of_the_active_blend_added(db, monkeypatch):
    from core.insight.why import explain_slot
    from core.ranking.rule_sets import load_rule_set
    from core.ranking.shop import shop_context
    from models.blend import Blend
    from tests.conftest import page_signed_in_as

    def every_part_weighs_one(self, valid):
        # a tiny shop's validation picks one part alone; the page must show a blend of several
        self.weights = dict.fromkeys(self.parts, 1.0)
        return self.weights

    monkeypatch.setattr(Blend, "learn_weights", every_part_weighs_one)
    make_shop()
    train_run(actor=SYSTEM, architecture="blend", config=TransformerConfig(**SMALL), time_budget_s=60)
    user = next(iter(shop_context().by_user))
    expected = explain_slot(user, 1, load_rule_set()).parts_sentence
    assert expected and expected.startswith("Of the lift")
    at = page_signed_in_as("explain", "mia", explain_user=user)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.subheader[0].value.startswith("Slot 1:")
    assert expected in [m.value for m in at.markdown]


def test_first_run_choice_records_every_candidate_and_activates_the_best(db):
    from core.model_runs import train_best

    make_shop()
    runs = train_best(actor=SYSTEM, time_budget_s=30)
    table = runs_table()
    assert sorted(table["architecture"].to_list()) == ["blend", "lstm", "transformer"]
    best = max(runs, key=lambda r: r.metrics["valid"]["ndcg@10"])
    assert active_run()["run_id"] == best.run_id
    assert table.filter(pl.col("active"))["run_id"].to_list() == [best.run_id]
    # the blend reuses the two trained models: no second transformer seed eats into the budget
    from models.registry import load_model

    blend = load_model(next(r.path for r in runs if r.architecture == "blend"))
    assert set(blend.parts) == {"transformer", "lstm", "itemknn", "ease", "mostpop"}
    from core.training import run_label

    assert (
        run_label(blend, "blend", "r1") == "Blend (transformer + LSTM + item-kNN + EASE + popularity) run r1"
    )


def test_a_runs_counts_take_every_step_and_a_held_out_copy_counts_without_the_held_out_ones(db):
    """Training validates on each shopper's last step, then the count parts count that step too, so the
    served homepage reads it; the audit's held-out copy counts again without those steps, so its quality is
    not measured with counts of the very steps it holds out; the served model stays as it was."""
    from core.data.sequences import load_sequences
    from core.insight.audit_population import holdout_store
    from core.ranking.shop import held_out_context, read_shop
    from models.base import SequenceData
    from models.baselines import ItemKNN

    make_shop()
    train_run(actor=SYSTEM, architecture="blend", config=TransformerConfig(**SMALL), time_budget_s=60)
    active = load_active_model()
    knn = active.model.parts["itemknn"]
    every = load_sequences(catalog=active.catalog)
    h = every.histories(list(range(40)), max_len=active.model.max_len)
    counted = lambda steps: ItemKNN(**knn.config_dict()).fit(  # noqa: E731
        SequenceData(steps.items, n_items=active.catalog.n_items)
    )
    torch.testing.assert_close(knn.score(h), counted(every).score(h))
    served = active.model.score(h)

    copy, held_out = holdout_store()
    ctx = held_out_context(read_shop(copy), load_active_model(copy))
    assert len(held_out) == len(every.user_ids)
    held = ctx.active.model.parts["itemknn"]
    torch.testing.assert_close(held.score(h), counted(ctx.steps).score(h))
    assert not torch.equal(held.score(h), knn.score(h))
    neural = ctx.active.model.parts["transformer"]  # the same trained weights: they never saw those steps
    assert torch.equal(neural.score(h), active.model.parts["transformer"].score(h))
    assert torch.equal(load_active_model().model.score(h), served)

    # the audit's model lists are ranked on that held-out snapshot, its recounted model included
    from core.insight.audit_population import audit_inputs
    from core.ranking.population import population_homepages
    from core.ranking.rules import RuleSet
    from core.release.roles import Account, Role

    pam = Account("pam", Role.PRODUCT_MANAGER)
    audited = audit_inputs(("model",), RuleSet(), sample=60, seed=1, actor=pam).homepages["model"]
    users = audited["user_id"].unique(maintain_order=True).to_list()
    expected = population_homepages(users, RuleSet(), ctx=ctx)["model_only"].rename({"slot": "rank"})
    assert audited.equals(expected.cast(audited.schema))
