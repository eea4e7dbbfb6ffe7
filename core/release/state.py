"""Release rows as the database holds them, and the timeline they make: which release is live when.

The live release at time t is the latest, by (start time, id), of the releases not cancelled whose start
(``starts_at``, or ``published_at`` when none) has come: exactly one once anything was published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from core import store
from core.release.artifact import LiveEntry, LivePointer
from core.release.audit import utcnow

COLUMNS = (
    "release_id, kind, artifact, content_hash, rule_set_id, rule_set_version, run_id, rollback_of, "
    "based_on, published_by, published_at, starts_at, note"
)


@dataclass(frozen=True)
class Release:
    release_id: int
    kind: str  # publish | rollback
    artifact: str
    content_hash: str
    rule_set_id: str
    rule_set_version: int
    run_id: str | None
    rollback_of: int | None
    based_on: int | None
    published_by: str
    published_at: datetime  # naive UTC, as stored
    starts_at: datetime | None
    note: str
    cancelled: bool = False

    @property
    def effective_at(self) -> datetime:
        return self.starts_at or self.published_at

    def entry(self) -> LiveEntry:
        utc = lambda t: t.replace(tzinfo=UTC) if t else None  # noqa: E731
        return LiveEntry(
            self.release_id,
            self.artifact,
            self.content_hash,
            self.kind,
            self.published_by,
            utc(self.published_at),
            utc(self.starts_at),
            self.note,
            self.rollback_of,
        )


@dataclass(frozen=True)
class DraftRef:
    """What a publish would snapshot: the latest saved rule-set version and the active model run."""

    rule_set_id: str
    rule_set_version: int
    run_id: str | None


@dataclass
class ReleaseState:
    releases: list[Release]  # newest first
    live: Release | None
    upcoming: list[Release]  # scheduled, in the order they go live
    now: datetime

    @property
    def head_id(self) -> int | None:
        """The newest release id: what a publisher's diff was computed against (None: none yet)."""
        return self.releases[0].release_id if self.releases else None

    def status(self, release: Release) -> str:
        if release.cancelled:
            return "cancelled"
        if self.live and release.release_id == self.live.release_id:
            return "live"
        if release in self.upcoming:
            return f"goes live {release.effective_at:%Y-%m-%d %H:%M} UTC"
        return "superseded" if release.effective_at <= self.now else "never live"


def read_releases(con) -> list[Release]:
    rows = con.execute(
        f"""SELECT {COLUMNS}, release_id IN (SELECT release_id FROM release_cancellations)
            FROM releases ORDER BY release_id DESC"""
    ).fetchall()
    return [Release(*r) for r in rows]


def timeline(releases: list[Release], now: datetime) -> tuple[Release | None, list[Release]]:
    """(live at ``now``, scheduled after it in order)."""
    ordered = sorted((r for r in releases if not r.cancelled), key=lambda r: (r.effective_at, r.release_id))
    started = [r for r in ordered if r.effective_at <= now]
    live = started[-1] if started else None
    return live, [r for r in ordered if r.effective_at > now]


def release_state(db_path=None, now: datetime | None = None) -> ReleaseState:
    """Every release, the live one and the scheduled ones at ``now`` (naive UTC, default: now)."""
    now = now or utcnow()
    with store.connect(db_path) as con:
        releases = read_releases(con)
    live, upcoming = timeline(releases, now)
    return ReleaseState(releases, live, upcoming, now)


def current_draft(rule_set_id: str = "default", db_path=None) -> DraftRef:
    with store.connect(db_path) as con:
        version = con.execute(
            "SELECT coalesce(max(version), 0) FROM rule_sets WHERE rule_set_id = ?", [rule_set_id]
        ).fetchall()[0][0]
        run = con.execute("SELECT run_id FROM model_runs WHERE active AND status = 'done'").fetchall()
    return DraftRef(rule_set_id, int(version), run[0][0] if run else None)


def pointer_for(releases: list[Release], now: datetime) -> LivePointer | None:
    """The live pointer these rows call for at ``now``: the live entry, then the scheduled ones."""
    live, upcoming = timeline(releases, now)
    entries = ([live] if live else []) + upcoming
    return LivePointer(tuple(r.entry() for r in entries)) if entries else None
