"""User segment expressions for rule scopes: ``attr == "v"``, ``attr != "v"``, ``attr in ["a", "b"]``,
joined with ``and`` / ``or`` and parentheses. Parsed by a small tokenizer and recursive descent into a
tree, evaluated against a user's attributes; never handed to Python's ``eval``.

Hostile input gets an InputError, never a RecursionError: parentheses nest at most ``MAX_DEPTH`` deep,
an expression has at most ``MAX_TOKENS`` tokens, and ``and`` / ``or`` chains are flat n-ary nodes, so
evaluating a long chain does not recurse either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from core.errors import InputError

MAX_DEPTH = 20  # nested parentheses
MAX_TOKENS = 20_000  # a long list of values is fine; a runaway expression is not
FIX = 'write attr == "value", attr != "value", attr in ["a", "b"], joined with and / or'
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"[^"\\]*"|\'[^\'\\]*\')|(?P<num>-?\d+(?:\.\d+)?)'
    r"|(?P<op>==|!=|\(|\)|\[|\]|,)|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
EVERYONE = ("all", "everyone", "*")


def _fail(expr: str, msg: str):
    shown = expr if len(expr) <= 80 else expr[:77] + "…"
    raise InputError(f"segment expression {shown!r}: {msg}", fix=FIX)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos, end = [], 0, len(expr.rstrip())
    while pos < end:
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            _fail(expr, f"cannot read {expr[pos:].strip()[:20]!r} at position {pos + 1}")
        kind = m.lastgroup
        text = m.group(kind)
        out.append((kind, text[1:-1] if kind == "str" else text))
        if len(out) > MAX_TOKENS:
            _fail(expr, f"it is longer than {MAX_TOKENS:,} words and symbols")
        pos = m.end()
    return out


@dataclass
class _Parser:
    expr: str
    toks: list[tuple[str, str]]
    i: int = 0
    depth: int = 0

    def peek(self) -> tuple[str | None, str | None]:
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        k, t = self.peek()
        if k is None or (kind and k != kind) or (text and t != text):
            _fail(
                self.expr,
                f"expected {text or kind} but found {t!r}" if k else f"expected {text or kind} at the end",
            )
        self.i += 1
        return t

    def literal(self) -> str:
        k, t = self.peek()
        if k not in ("str", "num"):
            _fail(self.expr, f"expected a quoted value but found {t!r}")
        return self.take()

    def values(self) -> tuple[str, ...]:
        self.take("op", "[")
        values = [] if self.peek() == ("op", "]") else [self.literal()]
        while self.peek() == ("op", ","):
            self.take()
            values.append(self.literal())
        self.take("op", "]")
        return tuple(values)

    def atom(self) -> tuple:
        if self.peek() == ("op", "("):
            self.take("op", "(")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                _fail(self.expr, f"parentheses nest more than {MAX_DEPTH} deep")
            node = self.disjunction()
            self.take("op", ")")
            self.depth -= 1
            return node
        name = self.take("name")
        if name in ("and", "or", "in", "not"):
            _fail(self.expr, f"expected an attribute name but found {name!r}")
        k, t = self.peek()
        if (k, t) in (("op", "=="), ("op", "!=")):
            self.take()
            return (t, name, self.literal())
        if (k, t) == ("name", "in"):
            self.take()
            return ("in", name, self.values())
        _fail(self.expr, f"expected ==, != or in after {name!r} but found {t!r}")

    def chain(self, word: str, part) -> tuple:
        nodes = [part()]
        while self.peek() == ("name", word):
            self.take()
            nodes.append(part())
        return nodes[0] if len(nodes) == 1 else (word, tuple(nodes))

    def conjunction(self) -> tuple:
        return self.chain("and", self.atom)

    def disjunction(self) -> tuple:
        return self.chain("or", self.conjunction)


@lru_cache(maxsize=512)
def parse_segment(expr: str) -> tuple:
    """Parse to a tree of ('or'|'and', (nodes…)) and ('=='|'!='|'in', attr, value(s)); refuses anything else."""
    parser = _Parser(expr, _tokens(expr))
    if not parser.toks:
        _fail(expr, "it is empty")
    tree = parser.disjunction()
    if parser.i != len(parser.toks):
        _fail(expr, f"unexpected {parser.toks[parser.i][1]!r}")
    return tree


def _eval(node: tuple, attrs: dict) -> bool:
    op = node[0]
    if op == "and":
        return all(_eval(n, attrs) for n in node[1])
    if op == "or":
        return any(_eval(n, attrs) for n in node[1])
    value = attrs.get(node[1])
    value = None if value is None else str(value)
    if op == "==":
        return value == node[2]
    if op == "!=":
        return value != node[2]
    return value in node[2]


def user_list(scope: str) -> list[str] | None:
    """The ids of a ``users: u1, u2`` scope (None for any other scope)."""
    scope = (scope or "").strip()
    if not scope.lower().startswith("users:"):
        return None
    return [u.strip() for u in scope[6:].split(",") if u.strip()]


def scope_matches(scope: str, user_attrs: dict) -> bool:
    scope = (scope or "all").strip()
    if scope.lower() in EVERYONE:
        return True
    ids = user_list(scope)
    if ids is not None:
        return str(user_attrs.get("user_id")) in ids
    return _eval(parse_segment(scope), user_attrs)


# --- the form's segment builder: clauses joined by one word, to and from an expression --------------


@dataclass(frozen=True)
class Clause:
    attribute: str
    op: str  # "==" | "!=" | "in"
    values: tuple[str, ...]

    def text(self) -> str:
        quote = lambda v: '"' + v.replace('"', "") + '"'
        if self.op == "in":
            return f"{self.attribute} in [{', '.join(quote(v) for v in self.values)}]"
        return f"{self.attribute} {self.op} {quote(self.values[0])}"


def build_segment(clauses: list[Clause], joiner: str = "and") -> str:
    """The expression for the builder's clauses ('all' when there are none); checked by parsing it."""
    if joiner not in ("and", "or"):
        raise InputError(f"segment: join clauses with and / or, not {joiner!r}")
    used = [c for c in clauses if c.values]
    if not used:
        return "all"
    for c in used:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c.attribute) or c.op not in ("==", "!=", "in"):
            raise InputError(f"segment: {c.attribute!r} {c.op!r} is not a clause the builder writes", fix=FIX)
    expr = f" {joiner} ".join(c.text() for c in used)
    parse_segment(expr)
    return expr


def segment_clauses(expr: str) -> tuple[list[Clause], str] | None:
    """The builder's clauses and joiner for an expression it could have written (one flat and/or chain of
    comparisons); None for anything else (the form then shows the expression as text)."""
    tree = parse_segment(expr)
    joiner, nodes = (tree[0], tree[1]) if tree[0] in ("and", "or") else ("and", (tree,))
    clauses = []
    for node in nodes:
        if node[0] not in ("==", "!=", "in"):
            return None
        values = node[2] if node[0] == "in" else (node[2],)
        clauses.append(Clause(node[1], node[0], tuple(values)))
    return clauses, joiner


def describe_scope(scope: str) -> str:
    """Who a scope reaches, in words: 'all shoppers', 'shoppers u1, u2', 'shoppers whose region is north'."""
    scope = (scope or "all").strip()
    if scope.lower() in EVERYONE:
        return "all shoppers"
    ids = user_list(scope)
    if ids is not None:
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        return f"shoppers {', '.join(ids[:5])}{more}"
    try:
        found = segment_clauses(scope)
    except InputError:
        return f"shoppers matching {scope!r} (not a valid expression)"
    if found is None:
        return f"shoppers matching {scope}"
    clauses, joiner = found
    words = {"==": "is", "!=": "is not", "in": "is"}
    parts = [f"{c.attribute} {words[c.op]} {' or '.join(c.values)}" for c in clauses]
    return "shoppers whose " + f" {joiner} ".join(parts)
