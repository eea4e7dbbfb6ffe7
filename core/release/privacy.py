"""Privacy: pseudonymous shopper ids, "who looked at whom", and forgetting a shopper.

A pseudonym is a keyed hash (HMAC-SHA256 with ``data/secret.key``), so it cannot be reversed by trying
ids, and the same shopper always gets the same one. The audit log stores pseudonyms, never shopper ids:
it is append-only, and a forgotten shopper must not stay readable in it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core import store
from core.config import settings
from core.release import audit
from core.release.roles import Account, Permission, require

VIEW_EVERY_S = 600  # one "looked at" row per account, shopper and page in this many seconds
_views_lock = threading.Lock()
_views: dict[tuple[str, str, str], float] = {}
_keys: dict[Path, bytes] = {}


def _secret_key() -> bytes:
    path = settings().secret_key_path
    if path not in _keys:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: of two processes starting at once, one writes the key and both read it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            pass
        key = path.read_bytes()
        if len(key) != 32:
            raise RuntimeError(f"{path} is damaged (expected a 32-byte key) — restore it from a backup")
        _keys[path] = key
    return _keys[path]


def pseudonym(user_id: str) -> str:
    """The stable pseudonym of a shopper id, e.g. ``shopper-3f9a2c1b07de``."""
    digest = hmac.new(_secret_key(), str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"shopper-{digest[:12]}"


def shopper_label(actor: Account, user_id: str) -> str:
    """The id as this account may see it: itself for merchandisers and up, a pseudonym for viewers."""
    return str(user_id) if actor.may(Permission.SEE_SHOPPER_IDS) else pseudonym(user_id)


def record_view(actor: Account, user_id: str, surface: str, db_path=None) -> bool:
    """Record that ``actor`` opened a shopper's history on ``surface`` (preview, explain…): one audit
    row per account, shopper and surface in ``VIEW_EVERY_S``. Returns whether a row was written."""
    require(actor, Permission.VIEW)
    key = (actor.username, str(user_id), str(surface)[:40])
    now = time.monotonic()
    with _views_lock:
        if now - _views.get(key, -VIEW_EVERY_S) < VIEW_EVERY_S:
            return False
        _views[key] = now
    audit.record(actor, "view_shopper", pseudonym(user_id), after={"surface": key[2]}, db_path=db_path)
    return True


@dataclass
class ForgetReport:
    """What ``forget_user`` removed, and what it could not."""

    pseudonym: str
    removed: dict[str, int]
    model_runs: int = 0
    artifacts_holding: list[str] = field(default_factory=list)
    rule_sets_naming: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"removed {n:,} {what}" for what, n in self.removed.items()]
        out.append(f"{self.pseudonym} is excluded from every release artifact published from now on")
        out.append(
            f"trained models are not retrained: {self.model_runs} model run(s) may have learned from these "
            "events; train a new run to drop them"
        )
        if self.artifacts_holding:
            out.append(
                f"published release artifact(s) {', '.join(self.artifacts_holding)} still hold this history "
                "(releases are immutable); publish a new release so the storefront stops serving it"
            )
        if self.rule_sets_naming:
            out.append(f"rule set version(s) {', '.join(self.rule_sets_naming)} name this shopper in a scope")
        return out


def forgotten_keys(con) -> set[str]:
    """Pseudonyms of every forgotten shopper (an artifact leaves them out, whatever the store holds)."""
    return {r[0] for r in con.execute("SELECT user_key FROM forgotten_users").fetchall()}


def _erase(con, actor: Account, user_id: str, key: str) -> dict[str, int]:
    require(actor, Permission.FORGET_USER, con)
    # a rejected raw line names the shopper as a whole field, not as part of a longer id
    pattern = r"(^|[^A-Za-z0-9_.-])" + re.escape(user_id) + r"($|[^A-Za-z0-9_.-])"
    counts = con.execute(
        """SELECT (SELECT count(*) FROM events WHERE user_id = ?), (SELECT count(*) FROM users WHERE user_id = ?),
                  (SELECT count(*) FROM rejects WHERE regexp_matches(raw, ?))""",
        [user_id, user_id, pattern],
    ).fetchall()[0]
    con.execute("DELETE FROM events WHERE user_id = ?", [user_id])
    con.execute("DELETE FROM users WHERE user_id = ?", [user_id])
    con.execute("DELETE FROM rejects WHERE regexp_matches(raw, ?)", [pattern])
    con.execute(
        "INSERT INTO forgotten_users VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [key, audit.utcnow(), actor.username],
    )
    removed = dict(zip(("events", "user rows", "rejected raw lines"), counts))
    audit.append(con, actor, "forget_user", key, after=removed)
    return removed


def forget_user(actor: Account, user_id: str, db_path=None) -> ForgetReport:
    """Erase a shopper's events and what the store derived from them, and keep them out of future
    artifacts. Admin only. Trained models are not retrained (the report says so)."""
    require(actor, Permission.FORGET_USER)
    user_id = str(user_id).strip()
    key = pseudonym(user_id)
    removed = audit.write(lambda con: _erase(con, actor, user_id, key), db_path)
    with store.connect(db_path) as con:
        runs = con.execute("SELECT count(*) FROM model_runs WHERE status = 'done'").fetchall()[0][0]
        named = con.execute(
            "SELECT rule_set_id, version FROM rule_sets WHERE contains(rules::VARCHAR, ?) ORDER BY 1, 2",
            [user_id],
        ).fetchall()
    report = ForgetReport(key, removed, runs, _artifacts_holding(user_id), [f"{r} v{v}" for r, v in named])
    from core.ranking.homepage import invalidate  # this process's ranking snapshot still holds the history

    invalidate()
    return report


def _artifacts_holding(user_id: str) -> list[str]:
    root = settings().releases_dir
    found = []
    for history in sorted(root.glob("[0-9]*/history.parquet")):
        hits = pl.scan_parquet(history).filter(pl.col("user_id") == user_id).select(pl.len()).collect()
        if hits.item():
            found.append(history.parent.name)
    return found
