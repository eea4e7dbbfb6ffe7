"""One vocabulary of event types: ``models.base.EVENT_TYPES`` (name → code). The loader accepts exactly its
names, the demo shop writes them, and the model inputs carry its codes."""

from __future__ import annotations

import pytest

from core import store
from core.data import formats
from core.data.ingest import ingest_events, rejects_for
from core.data.sequences import load_sequences, read_steps
from core.release.roles import SYSTEM
from models.base import EVENT_TYPES

FUNNEL = ["view", "click", "add_to_cart", "remove_from_cart", "purchase", "review"]


def test_the_loader_knows_the_models_names_in_code_order():
    assert formats.EVENT_TYPES == sorted(EVENT_TYPES, key=EVENT_TYPES.get)


def test_a_name_outside_the_vocabulary_is_rejected_naming_the_vocabulary(db, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u1,i1,wishlist\n")
    result = ingest_events(log, db_path=db, actor=SYSTEM)
    reason = rejects_for(result.ingest_id, db_path=db)["reason"][0]
    assert all(name in reason for name in EVENT_TYPES)


@pytest.fixture
def funnel_db(db, tmp_path):
    """One shopper who goes through every event type, one item each, a minute apart."""
    rows = [f"2024-05-01 10:0{i}:00,u1,i{i},{name}" for i, name in enumerate(FUNNEL)]
    log = tmp_path / "funnel.csv"
    log.write_text("ts,user_id,item_id,event_type\n" + "\n".join(rows) + "\n")
    assert ingest_events(log, db_path=db, actor=SYSTEM).loaded == len(FUNNEL)
    return db


def test_model_inputs_carry_the_vocabularys_codes(funnel_db):
    seqs = load_sequences(funnel_db)
    expected = [EVENT_TYPES[n] for n in ("view", "click", "add_to_cart", "add_to_cart", "purchase")]
    assert seqs.event_types[0].tolist() == expected  # a removal counts as the cart; a review is no step


def test_the_steps_of_chosen_users_use_the_same_codes(funnel_db):
    with store.connect(funnel_db) as con:
        everyone, chosen = read_steps(con), read_steps(con, user_ids=["u1"])
    assert chosen["evs"].to_list() == everyone["evs"].to_list()


def test_chosen_user_ids_are_values_not_sql(funnel_db):
    """A user id that looks like SQL is a value of the registered frame, not text of the query."""
    with store.connect(funnel_db) as con:
        frame = read_steps(con, user_ids=["u1') OR 1=1 --"])
    assert frame.height == 0
