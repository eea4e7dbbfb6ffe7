"""Segment expressions: what they match, and hostile ones refused with an InputError (never a RecursionError)."""

import pytest

from core.errors import InputError
from core.ranking.rules import Rule, RuleSet, validate
from core.ranking.segments import Clause, build_segment, parse_segment, scope_matches, segment_clauses

NORTH = {"user_id": "u1", "region": "north", "device": "mobile"}


@pytest.mark.parametrize(
    "scope, matches",
    [
        ("all", True),
        ("users: u2, u1", True),
        ("users: u2", False),
        ('region == "north"', True),
        ('region != "north"', False),
        ('device in ["tablet", "mobile"] and region == "north"', True),
        ('region == "south" or (device == "mobile" and region == "north")', True),
    ],
)
def test_scopes_match(scope, matches):
    assert scope_matches(scope, NORTH) is matches


@pytest.mark.parametrize(
    "hostile",
    [
        "(" * 5000 + 'region == "north"' + ")" * 5000,
        "(" * 5000,
        " or ".join(['region == "x"'] * 3000) + " or",
        "region == " + '"a" ' * 30_000,
    ],
)
def test_a_pathological_expression_is_an_input_error(hostile):
    with pytest.raises(InputError, match="segment expression"):
        scope_matches(hostile, NORTH)


def test_a_long_flat_chain_is_fine():
    chain = " or ".join(f'region == "r{i}"' for i in range(2000)) + ' or region == "north"'
    assert scope_matches(chain, NORTH)


def test_a_deep_scope_is_a_validation_message_not_a_crash():
    deep = "(" * 5000 + 'region == "north"' + ")" * 5000
    errors = validate(RuleSet(rules=[Rule("b", "block", {"condition": {"brand": "x"}}, scope=deep)]))
    assert len(errors) == 1
    assert "nest more than 20 deep" in errors[0]


def test_the_builder_writes_and_reads_back_its_clauses():
    clauses = [Clause("region", "==", ("north",)), Clause("device", "in", ("mobile", "tablet"))]
    expr = build_segment(clauses, "and")
    assert expr == 'region == "north" and device in ["mobile", "tablet"]'
    assert segment_clauses(expr) == (clauses, "and")
    assert segment_clauses('region == "a" or (device == "b" and region == "c")') is None
    assert build_segment([], "and") == "all"


def test_the_builder_refuses_a_made_up_attribute():
    with pytest.raises(InputError):
        build_segment([Clause("region) or (x", "==", ("a",))], "and")


def test_parse_tree_is_flat():
    assert parse_segment('a == "1" or b == "2" or c == "3"')[0] == "or"
    assert len(parse_segment('a == "1" or b == "2" or c == "3"')[1]) == 3
