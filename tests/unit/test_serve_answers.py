"""The API's answer cache: same release and request, same bytes; a new release or an error is never
answered from it; bounded to the most recently used answers."""

from __future__ import annotations

import json

import pytest

from core.errors import NotFoundError
from core.serve.answers import AnswerCache


def counting(body: dict):
    calls = []

    def compute():
        calls.append(1)
        return body

    return compute, calls


def test_the_same_request_to_the_same_release_is_computed_once():
    cache = AnswerCache(4)
    compute, calls = counting({"release_id": 2, "slots": [1, 2]})
    first = cache.answer(2, ("homepage", "u1"), compute)
    second = cache.answer(2, ("homepage", "u1"), compute)
    assert len(calls) == 1
    assert first.body == second.body
    assert json.loads(second.body) == {"release_id": 2, "slots": [1, 2]}
    assert second.headers["X-Release-Id"] == "2"


def test_a_new_release_is_computed_again():
    cache = AnswerCache(4)
    compute, calls = counting({"release_id": 3})
    cache.answer(2, ("homepage", "u1"), compute)
    cache.answer(3, ("homepage", "u1"), compute)
    assert len(calls) == 2


def test_other_parameters_are_another_answer():
    cache = AnswerCache(4)
    compute, calls = counting({"release_id": 2})
    cache.answer(2, ("homepage", "u1", 24), compute)
    cache.answer(2, ("homepage", "u1", 12), compute)
    assert len(calls) == 2


def test_an_error_is_raised_and_not_kept():
    cache = AnswerCache(4)

    def missing():
        raise NotFoundError("item 'x' is not in the catalog")

    for _ in range(2):
        with pytest.raises(NotFoundError):
            cache.answer(2, ("similar", "x"), missing)
    assert len(cache) == 0


def test_only_the_most_recently_used_answers_are_kept():
    cache = AnswerCache(2)
    compute, calls = counting({"release_id": 2})
    for key in ("a", "b", "a", "c"):  # "a" used again, so "b" is the least recent when "c" comes
        cache.answer(2, (key,), compute)
    assert len(cache) == 2
    cache.answer(2, ("a",), compute)
    assert len(calls) == 3
    cache.answer(2, ("b",), compute)
    assert len(calls) == 4


def test_size_zero_keeps_nothing_and_counts_no_lookup():
    lookups = []
    cache = AnswerCache(0, on_lookup=lookups.append)
    compute, calls = counting({"release_id": 2})
    cache.answer(2, ("a",), compute)
    cache.answer(2, ("a",), compute)
    assert len(calls) == 2
    assert lookups == []


def test_lookups_are_reported_as_hits_and_misses():
    lookups = []
    cache = AnswerCache(4, on_lookup=lookups.append)
    compute, _ = counting({"release_id": 2})
    cache.answer(2, ("a",), compute)
    cache.answer(2, ("a",), compute)
    assert lookups == [False, True]
