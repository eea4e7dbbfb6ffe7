"""User segment expressions for rule scopes: ``attr == "v"``, ``attr != "v"``, ``attr in ["a", "b"]``,
joined with ``and`` / ``or`` and parentheses. Parsed by a small tokenizer and recursive descent into a
tree, evaluated against a user's attributes; never handed to Python's ``eval``."""

from __future__ import annotations

import re
from functools import lru_cache

from core.errors import InputError

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"[^"\\]*"|\'[^\'\\]*\')|(?P<num>-?\d+(?:\.\d+)?)'
    r"|(?P<op>==|!=|\(|\)|\[|\]|,)|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise InputError(
                f"segment expression {expr!r}: cannot read {expr[pos:].strip()[:20]!r} at position {pos + 1}",
                fix='write attr == "value", attr != "value", attr in ["a", "b"], joined with and / or',
            )
        kind = m.lastgroup
        text = m.group(kind)
        out.append((kind, text[1:-1] if kind == "str" else text))
        pos = m.end()
    return out


@lru_cache(maxsize=512)
def parse_segment(expr: str) -> tuple:
    """Parse to a tree of ('or'|'and', a, b) and ('=='|'!='|'in', attr, value(s)); refuses anything else."""
    toks = _tokens(expr)
    i = 0
    fix = 'write attr == "value", attr != "value", attr in ["a", "b"], joined with and / or'

    def fail(msg: str):
        raise InputError(f"segment expression {expr!r}: {msg}", fix=fix)

    def peek():
        return toks[i] if i < len(toks) else (None, None)

    def take(kind=None, text=None):
        nonlocal i
        k, t = peek()
        if k is None or (kind and k != kind) or (text and t != text):
            fail(f"expected {text or kind} but found {t!r}" if k else f"expected {text or kind} at the end")
        i += 1
        return t

    def literal():
        k, t = peek()
        if k not in ("str", "num"):
            fail(f"expected a quoted value but found {t!r}")
        take()
        return t

    def atom():
        if peek() == ("op", "("):
            take("op", "(")
            node = disj()
            take("op", ")")
            return node
        name = take("name")
        if name in ("and", "or", "in", "not"):
            fail(f"expected an attribute name but found {name!r}")
        k, t = peek()
        if (k, t) in (("op", "=="), ("op", "!=")):
            take()
            return (t, name, literal())
        if (k, t) == ("name", "in"):
            take()
            take("op", "[")
            values = [] if peek() == ("op", "]") else [literal()]
            while peek() == ("op", ","):
                take()
                values.append(literal())
            take("op", "]")
            return ("in", name, tuple(values))
        fail(f"expected ==, != or in after {name!r} but found {t!r}")

    def conj():
        node = atom()
        while peek() == ("name", "and"):
            take()
            node = ("and", node, atom())
        return node

    def disj():
        node = conj()
        while peek() == ("name", "or"):
            take()
            node = ("or", node, conj())
        return node

    if not toks:
        fail("it is empty")
    tree = disj()
    if i != len(toks):
        fail(f"unexpected {toks[i][1]!r}")
    return tree


def _eval(node: tuple, attrs: dict) -> bool:
    op = node[0]
    if op == "and":
        return _eval(node[1], attrs) and _eval(node[2], attrs)
    if op == "or":
        return _eval(node[1], attrs) or _eval(node[2], attrs)
    value = attrs.get(node[1])
    value = None if value is None else str(value)
    if op == "==":
        return value == node[2]
    if op == "!=":
        return value != node[2]
    return value in node[2]


def scope_matches(scope: str, user_attrs: dict) -> bool:
    scope = (scope or "all").strip()
    if scope.lower() in ("all", "everyone", "*"):
        return True
    if scope.lower().startswith("users:"):
        ids = {u.strip() for u in scope[6:].split(",") if u.strip()}
        return str(user_attrs.get("user_id")) in ids
    return _eval(parse_segment(scope), user_attrs)
