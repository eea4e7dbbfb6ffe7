"""Releases: publish the draft, roll back, schedule a go-live, and keep the database and the artifacts
in agreement.

A release row is immutable (``core.release.state`` reads them and says which is live when). A rollback
is a new row pointing at an older artifact.

Publishing runs under a file lock (``data/releases/.publish.lock``, one holder across threads and
processes; the kernel drops it when its holder dies): reconcile, check the caller's expectations, write
the artifact, commit the row and its audit row in one transaction, then rewrite the pointer. The commit
is the moment of truth: a crash before it leaves an artifact no row names (removed by the next
``reconcile``), a crash after it a stale pointer (rewritten by the next ``reconcile``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from core import store
from core.config import settings
from core.errors import ArtifactError, ConflictError, InputError, NotFoundError, StoreBusyError
from core.ranking.rule_sets import load_rule_set
from core.release import audit
from core.release.artifact import POINTER, LivePointer, open_artifact, read_pointer
from core.release.build import TMP_PREFIX, write_artifact, write_pointer
from core.release.privacy import forgotten_keys
from core.release.roles import Account, Permission, require
from core.release.state import COLUMNS, DraftRef, Release, pointer_for, read_releases, release_state

LOCK_FILE = ".publish.lock"
LOCK_WAIT_S = 120.0


# --- the lock, the pointer and reconciliation --------------------------------------------------------
@contextmanager
def publish_lock(root: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold ``root/.publish.lock`` (flock: one holder among threads and processes)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreBusyError(
                        f"another publish or rollback has held {root / LOCK_FILE} for {wait_s:.0f} s — try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def _reconcile_locked(root: Path, db_path) -> list[str]:
    """Bring the folder in line with the database (the lock is held): returns what it did."""
    done = []
    with store.connect(db_path) as con:
        releases = read_releases(con)
    named = {r.artifact for r in releases}
    for path in sorted(root.iterdir()):
        leftover = path.name.startswith(TMP_PREFIX) or (path.name.isdigit() and path.name not in named)
        if leftover:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            done.append(f"removed {path.name} (left by an interrupted publish)")
    now = audit.utcnow()
    wanted = pointer_for(releases, now)
    try:
        current = read_pointer(root)
    except ArtifactError:
        current = None
    if wanted is None and current is not None:
        (root / POINTER).unlink()
        done.append("removed a live pointer no release names")
    elif wanted is not None and not same_timeline(current, wanted, now):
        write_pointer(root, wanted)
        done.append(f"live pointer set to release {wanted.timeline[0].release_id}")
    return done


def same_timeline(pointer: LivePointer | None, wanted: LivePointer | None, now: datetime) -> bool:
    """Whether a pointer serves what the rows call for from ``now`` on (a scheduled entry that has since
    gone live is the same timeline, written earlier)."""
    if pointer is None or wanted is None:
        return pointer is wanted
    at = now.replace(tzinfo=UTC)
    return (pointer.entry_at(at), pointer.upcoming(at)) == (wanted.entry_at(at), wanted.upcoming(at))


def reconcile(db_path=None, wait: bool = True) -> list[str]:
    """Repair what a crash left (see the module docstring); with ``wait=False`` skip when a publish runs."""
    root = settings().releases_dir
    try:
        with publish_lock(root, LOCK_WAIT_S if wait else 0.0):
            return _reconcile_locked(root, db_path)
    except StoreBusyError:
        if wait:
            raise
        return []


def check_consistency(db_path=None, now: datetime | None = None) -> list[str]:
    """Problems between the database and the folder (empty when they agree and every artifact verifies)."""
    root, state = settings().releases_dir, release_state(db_path, now)
    problems = [f"{p.name}: not a release artifact" for p in root.glob(f"{TMP_PREFIX}*")]
    named = {r.artifact for r in state.releases}
    problems += [f"{p.name}: no release names it" for p in root.glob("[0-9]*") if p.name not in named]
    try:
        pointer = read_pointer(root)
    except ArtifactError as exc:
        return [*problems, str(exc)]
    if not same_timeline(pointer, pointer_for(state.releases, state.now), state.now):
        problems.append("the live pointer does not match the releases in the database")
    for artifact in sorted(named):
        try:
            open_artifact(root / artifact, verify=True)
        except ArtifactError as exc:
            problems.append(str(exc))
    return problems


# --- publish, rollback, cancel -----------------------------------------------------------------------
def _note(note: str) -> str:
    note = (note or "").strip()
    if not note:
        raise InputError("note: a release needs a note", fix="say in a sentence why this goes live")
    if len(note) > 1000:
        raise InputError("note: longer than 1000 characters", fix="shorten it")
    return note


def _start(starts_at: datetime | None, now: datetime) -> datetime | None:
    """A start time as naive UTC (a naive input is read as UTC); it must lie ahead."""
    if starts_at is None:
        return None
    if starts_at.tzinfo is not None:
        starts_at = starts_at.astimezone(UTC).replace(tzinfo=None)
    if starts_at <= now:
        raise InputError(
            f"start time {starts_at:%Y-%m-%d %H:%M} UTC has passed",
            fix="give a later time, or none to go live now",
        )
    return starts_at


def _check_head(con, expected_head: int | None) -> int | None:
    """Refuse when a release was made after the one the caller's diff was computed against."""
    releases = read_releases(con)
    head = releases[0].release_id if releases else None
    if head != expected_head:
        newer = [r for r in releases if expected_head is None or r.release_id > expected_head]
        last = newer[0] if newer else releases[0]
        raise ConflictError(
            f"release {last.release_id} was published by {last.published_by} at {last.published_at:%H:%M:%S} UTC "
            f"after your diff was computed (against release {expected_head or 'none'}) — review the new diff "
            "and publish again"
        )
    return head


def _insert(con, release: Release, actor: Account, action: str, expected_head: int | None) -> None:
    permission = Permission.ROLLBACK if release.kind == "rollback" else Permission.PUBLISH
    require(actor, permission, con)
    _check_head(con, expected_head)
    values = [getattr(release, c.strip()) for c in COLUMNS.split(",")]
    con.execute(f"INSERT INTO releases ({COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)
    after = {
        "rule_set": f"{release.rule_set_id} v{release.rule_set_version}",
        "run_id": release.run_id,
        "artifact": release.artifact,
        "content_hash": release.content_hash,
        "starts_at": release.starts_at,
        "note": release.note,
        "rollback_of": release.rollback_of,
    }
    audit.append(
        con, actor, action, f"release {release.release_id}", before={"head": expected_head}, after=after
    )


def _commit(root: Path, release: Release, actor: Account, expected_head: int | None, db_path) -> Release:
    action = "schedule" if release.starts_at else release.kind
    audit.write(lambda con: _insert(con, release, actor, action, expected_head), db_path)
    with store.connect(db_path) as con:
        pointer = pointer_for(read_releases(con), audit.utcnow())
    write_pointer(root, pointer)
    return release


def publish(
    actor: Account,
    note: str,
    *,
    expected_head: int | None,
    expected_draft: DraftRef | None = None,
    starts_at: datetime | None = None,
    rule_set_id: str = "default",
    db_path=None,
) -> Release:
    """Publish the draft (the latest saved rule-set version + the active run) as a new release, live now
    or at ``starts_at``. ``expected_head``: the newest release when the caller's diff was computed;
    ``expected_draft``: the draft it showed. Either having changed refuses the publish (ConflictError)."""
    require(actor, Permission.PUBLISH)
    now = audit.utcnow()
    note, starts = _note(note), _start(starts_at, now)
    root = settings().releases_dir
    with publish_lock(root):
        _reconcile_locked(root, db_path)
        with store.connect(db_path) as con:
            require(actor, Permission.PUBLISH, con)
            head = _check_head(con, expected_head)
            forgotten = forgotten_keys(con)
        from core.release.snapshot import ranking_snapshot  # the ranking and torch: for a publish only

        rule_set = load_rule_set(rule_set_id, db_path=db_path)
        snap = ranking_snapshot(forgotten, db_path)
        draft = DraftRef(rule_set_id, rule_set.version, snap.run_id)
        if expected_draft is not None and draft != expected_draft:
            raise ConflictError(
                f"the draft changed since you reviewed it (rule set v{expected_draft.rule_set_version} → "
                f"v{draft.rule_set_version}, model {expected_draft.run_id} → {draft.run_id}) — review the new diff"
            )
        release_id = (head or 0) + 1
        manifest = write_artifact(root, str(release_id), snap, rule_set)
        release = Release(
            release_id, "publish", str(release_id), manifest["content_hash"], rule_set_id, rule_set.version,
            snap.run_id, None, head, actor.username, audit.utcnow(), starts, note,
        )  # fmt: skip
        try:
            return _commit(root, release, actor, expected_head, db_path)
        except BaseException:
            if not _committed(release.release_id, db_path):
                shutil.rmtree(root / release.artifact, ignore_errors=True)
            raise


def _committed(release_id: int, db_path) -> bool:
    try:
        with store.connect(db_path) as con:
            return bool(con.execute("SELECT 1 FROM releases WHERE release_id = ?", [release_id]).fetchall())
    except Exception:  # the store is unreachable: leave the folder to the next reconcile
        return True


def rollback(
    actor: Account,
    release_id: int,
    note: str,
    *,
    expected_head: int | None,
    starts_at: datetime | None = None,
    db_path=None,
) -> Release:
    """Make an earlier release live again: a new release row pointing at that release's artifact
    (the very same files), checked against its manifest first."""
    require(actor, Permission.ROLLBACK)
    now = audit.utcnow()
    note, starts = _note(note), _start(starts_at, now)
    root = settings().releases_dir
    with publish_lock(root):
        _reconcile_locked(root, db_path)
        with store.connect(db_path) as con:
            require(actor, Permission.ROLLBACK, con)
            head = _check_head(con, expected_head)
            target = next((r for r in read_releases(con) if r.release_id == int(release_id)), None)
        if target is None:
            raise NotFoundError(f"no release {release_id} — see `python -m core releases`")
        open_artifact(root / target.artifact, verify=True)
        release = Release(
            head + 1, "rollback", target.artifact, target.content_hash, target.rule_set_id, target.rule_set_version,
            target.run_id, target.release_id, head, actor.username, audit.utcnow(), starts, note,
        )  # fmt: skip
        return _commit(root, release, actor, expected_head, db_path)


def cancel_scheduled(actor: Account, release_id: int, note: str, db_path=None) -> None:
    """Cancel a scheduled release before it goes live (the row stays; a cancellation row is added)."""
    require(actor, Permission.PUBLISH)
    note, root = _note(note), settings().releases_dir

    def work(con):
        require(actor, Permission.PUBLISH, con)
        target = next((r for r in read_releases(con) if r.release_id == int(release_id)), None)
        if target is None:
            raise NotFoundError(f"no release {release_id} — see `python -m core releases`")
        if target.cancelled or target.effective_at <= audit.utcnow():
            raise InputError(f"release {release_id} is not waiting to go live", fix="roll back instead")
        con.execute(
            "INSERT INTO release_cancellations VALUES (?, ?, ?, ?)",
            [target.release_id, actor.username, audit.utcnow(), note],
        )
        audit.append(con, actor, "cancel_schedule", f"release {release_id}", after={"note": note})

    with publish_lock(root):
        audit.write(work, db_path)
        _reconcile_locked(root, db_path)
