"""``steps_from_frame`` works on every step at once; per user it gives what ``Vocab.encode`` and
``gap_buckets`` give one user at a time (empty histories and unknown items included)."""

from types import SimpleNamespace

import numpy as np
import polars as pl

from core.data.sequences import Vocab, gap_buckets, steps_from_frame

VOCAB = Vocab(["a", "b", "c"])
FRAME = pl.DataFrame(
    {
        "user_id": ["u1", "u2", "u3", "u4"],
        "items": [["a", "b", "a"], [], ["zz", "c"], ["c"]],
        "evs": [[1, 2, 5], [], [3, 1], [1]],
        "ts": [[10.0, 70.0, 4000.0], [], [5.0, 5.0], [1e9]],
    },
    schema={
        "user_id": pl.Utf8,
        "items": pl.List(pl.Utf8),
        "evs": pl.List(pl.Int32),
        "ts": pl.List(pl.Float64),
    },
)


def steps():
    return steps_from_frame(FRAME, SimpleNamespace(vocab=VOCAB))


def test_items_are_encoded_per_user_as_the_vocabulary_does():
    assert [s.tolist() for s in steps().items] == [VOCAB.encode(i).tolist() for i in FRAME["items"].to_list()]


def test_gaps_are_bucketed_per_user_from_each_users_first_step():
    expected = [gap_buckets(np.asarray(t, dtype=np.float64)).tolist() for t in FRAME["ts"].to_list()]
    assert [g.tolist() for g in steps().gaps] == expected


def test_event_codes_and_times_keep_their_users():
    s = steps()
    assert [e.tolist() for e in s.event_types] == FRAME["evs"].to_list()
    assert [t.tolist() for t in s.ts] == FRAME["ts"].to_list()


def test_every_user_keeps_a_row_even_without_steps():
    assert steps().user_ids == ["u1", "u2", "u3", "u4"]


def test_an_empty_frame_gives_no_users():
    assert steps_from_frame(FRAME.clear(), SimpleNamespace(vocab=VOCAB)).items == []
