"""Writing a release artifact and the ``live`` pointer so that a crash at any point leaves either the
old state or the new one, never a half-written file a reader could trust.

An artifact is written into ``.tmp-<random>/`` beside its final place, every file and folder fsynced,
then renamed to ``<id>/`` (a rename within one folder is atomic) and the parent folder fsynced. The
pointer is written to a temporary file, fsynced and ``os.replace``d over ``live``. Leftovers of a crash
(temporary folders, a renamed folder whose database row never committed) are removed by
``core.release.releases.reconcile``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ArtifactError
from core.ranking.rules import RuleSet
from core.release.artifact import FORMAT, MANIFEST, MODEL_DIR, POINTER, LivePointer, content_hash, file_digest

if TYPE_CHECKING:  # the snapshot module loads the ranking (and torch); reading a type needs none of it
    from core.release.snapshot import RankingSnapshot

TMP_PREFIX = ".tmp-"


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's entry list is what makes a rename durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tables(folder: Path, snap: RankingSnapshot, rule_set: RuleSet) -> None:
    (folder / "rules.json").write_text(rule_set.to_json())
    tables = {
        "items": snap.items,
        "promotions": snap.promotions,
        "users": snap.users,
        "history": snap.history,
        "popularity": snap.popularity,
        "trending": snap.trending,
    }
    for name, frame in tables.items():
        frame.write_parquet(folder / f"{name}.parquet", compression="zstd", statistics=True)
    if snap.run_id:
        if snap.run_path is None or not snap.run_path.is_dir():
            raise ArtifactError(
                f"model run {snap.run_id}: its folder {snap.run_path} is missing — activate another run"
            )
        shutil.copytree(snap.run_path, folder / MODEL_DIR, copy_function=shutil.copyfile)


def write_artifact(root: Path, name: str, snap: RankingSnapshot, rule_set: RuleSet) -> dict:
    """Write the artifact ``root/name`` (which must not exist) and return its manifest."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        _write_tables(tmp, snap, rule_set)
        digests, sizes = {}, {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            fsync_path(path)
            digests[rel], sizes[rel] = file_digest(path), path.stat().st_size
        manifest = {
            "format": FORMAT,
            "release_id": int(name),
            "created_at": datetime.now(UTC).isoformat(),
            "rule_set": {"id": rule_set.rule_set_id, "version": rule_set.version},
            "model": {"run_id": snap.run_id, "kind": "lstm" if snap.run_id else "popularity"},
            "shop_clock": snap.shop_clock.isoformat(),
            "counts": {"items": snap.items.height, "users": snap.users.height, "steps": snap.history.height},
            "files": {n: {"sha256": digests[n], "bytes": sizes[n]} for n in sorted(digests)},
            "content_hash": content_hash(digests),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        fsync_path(tmp / MANIFEST)
        for folder in sorted({p.parent for p in tmp.rglob("*")}, key=lambda p: -len(p.parts)):
            fsync_path(folder)
        os.rename(tmp, root / name)  # refuses an existing non-empty folder: ids are never reused
        fsync_path(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def write_pointer(root: Path, pointer: LivePointer) -> None:
    """Replace ``root/live`` atomically: a reader sees the old pointer or the new one."""
    tmp = root / f"{TMP_PREFIX}{POINTER}-{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        f.write(pointer.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / POINTER)
    fsync_path(root)
