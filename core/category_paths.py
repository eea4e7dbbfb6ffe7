"""Category paths ``a.b.c``, in one place: a prefix covers itself and its sub-paths (``beauty`` covers
``beauty.skin``, never ``beautyx``), the top level is the first part, the leaf the last.

Every layer of core may import this (data, ranking, insight, runs); it imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

SEP = "."
UNKNOWN = "unknown"  # the name of a missing category wherever one is shown or counted


def under(path: str | None, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or one of its sub-paths."""
    return bool(path) and (path == prefix or path.startswith(prefix + SEP))


def under_any(paths: Iterable[str | None], prefix: str) -> np.ndarray:
    """(N,) bool: ``under`` for each path (a list or a numpy array of paths)."""
    return np.fromiter((under(p, prefix) for p in paths), dtype=bool)


def under_series(paths: pl.Series, prefixes: Iterable[str]) -> pl.Series:
    """(N,) bool Series: the path is under one of ``prefixes`` (nulls are under none)."""
    filled = paths.cast(pl.Utf8).fill_null("")
    out = pl.Series(np.zeros(len(filled), dtype=bool))
    for prefix in prefixes:
        out = out | (filled == prefix) | filled.str.starts_with(prefix + SEP)
    return out


def sql_under(column: str) -> str:
    """SQL for ``column`` under a prefix, taking two parameters: ``sql_params(prefix)``. ``starts_with``,
    not ``LIKE``: a prefix holding ``%`` or ``_`` is text, never a wildcard. ``column`` is ours, never input."""
    return f"({column} = ? OR starts_with({column}, ?))"


def sql_params(prefix: str) -> list[str]:
    return [prefix, prefix + SEP]


def top_level(path: str | None, unknown: str = UNKNOWN) -> str:
    return path.split(SEP, 1)[0] if path else unknown


def top_levels(paths: Iterable[str | None], unknown: str = UNKNOWN) -> np.ndarray:
    """(N,) object array of top-level categories (``unknown`` for a missing path)."""
    return np.array([top_level(p, unknown) for p in paths], dtype=object)


def leaf(path: str | None) -> str:
    return path.rsplit(SEP, 1)[-1] if path else ""


def prefixes(path: str | None) -> list[str]:
    """``a.b.c`` → ``[a, a.b, a.b.c]``: every category a picker may offer for the path."""
    parts = path.split(SEP) if path else []
    return [SEP.join(parts[: n + 1]) for n in range(len(parts))]


def mix_by_top_level(mix: dict[str, float]) -> dict[str, float]:
    """A {category path: share} mix summed to top-level categories."""
    out: dict[str, float] = {}
    for path, share in mix.items():
        top = top_level(path)
        out[top] = out.get(top, 0.0) + share
    return out
