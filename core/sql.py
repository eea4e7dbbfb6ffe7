"""The one place that quotes text into SQL.

Nothing a file, a form or a request contains is ever quoted into SQL: values are parameters (``?``), and a
file's column names are mapped onto our own known names in Python (``core.data.columns``). What is left to
quote is ours: our column and table names, the SQL we generate, and file paths (the import folders' files,
an upload saved under a safe name, or the path the operator typed at the shell). These helpers quote those,
and refuse what cannot be quoted safely.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lit(text) -> str:
    """A SQL string literal: single quotes doubled. NUL cannot be part of a DuckDB string literal (nor of a
    file path), so it is refused rather than silently cut."""
    text = str(text)
    if "\x00" in text:
        raise ValueError("a NUL character cannot be quoted into SQL")
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier for one of *our* names (a known column, a temp table): letters, digits and
    underscores only, so a name that comes from input is refused instead of quoted."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not one of our identifiers: {name!r}")
    return '"' + name + '"'
