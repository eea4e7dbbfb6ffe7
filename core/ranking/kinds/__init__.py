"""The registry of rule kinds: every module of this package that defines ``KIND`` (a ``base.Kind``).

Adding a kind is one new file here (plus its test); validation, the editor table, the forms, the pipeline,
the reasons and the sentences find it through this registry. ``register`` adds a kind from elsewhere
(tests do; ``registered`` undoes it afterwards).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import InputError
from core.ranking.kinds.base import Kind, Stage
from core.ranking.reasons import ReasonCode

_kinds: dict[str, Kind] = {}
_ordered: list[Kind] = []  # _kinds in pipeline order, kept with it
_found = False
_lock = threading.Lock()


def _discover() -> None:
    global _found
    with _lock:
        if _found:
            return
        for module in pkgutil.iter_modules(__path__):
            kind = vars(importlib.import_module(f"{__name__}.{module.name}")).get("KIND")
            if isinstance(kind, Kind):
                _kinds.setdefault(kind.name, kind)
        _order()
        _found = True


def _order() -> None:
    _ordered[:] = sorted(_kinds.values(), key=lambda k: (k.stage, k.order, k.name))


def register(kind: Kind) -> Kind:
    """Add a kind (its name must be new)."""
    _discover()
    if kind.name in _kinds and _kinds[kind.name] is not kind:
        raise ValueError(f"a rule kind named {kind.name!r} is already registered")
    _kinds[kind.name] = kind
    _order()
    return kind


def unregister(name: str) -> None:
    _kinds.pop(name, None)
    _order()


@contextmanager
def registered(kind: Kind) -> Iterator[Kind]:
    """The kind registered for the ``with`` block only."""
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)


def all_kinds() -> list[Kind]:
    """Every kind, in pipeline order (stage, then order within the stage)."""
    if not _found:
        _discover()
    return list(_ordered)


def names() -> tuple[str, ...]:
    return tuple(k.name for k in all_kinds())


def find(name: str) -> Kind | None:
    _discover()
    return _kinds.get(name)


def get(name: str) -> Kind:
    kind = find(name)
    if kind is None:
        raise InputError(f"unknown rule kind {name!r}", fix=f"use one of {', '.join(names())}")
    return kind


def in_stage(stage: Stage) -> list[Kind]:
    return [k for k in all_kinds() if k.stage == stage]


def codes() -> list[ReasonCode]:
    """Every reason code of every kind (the API's vocabulary)."""
    return [code for kind in all_kinds() for code in kind.Code]


__all__ = [
    "Kind",
    "Stage",
    "all_kinds",
    "codes",
    "find",
    "get",
    "in_stage",
    "names",
    "register",
    "registered",
]
