"""The release artifact and the ``live`` pointer, read without the database (the storefront uses this).

Layout (docs/ARCHITECTURE.md, "The release artifact")::

    data/releases/live            JSON: the timeline — the live entry, then scheduled ones
    data/releases/<id>/manifest.json   format, ids, shop clock, counts, every file's sha256, content hash
    data/releases/<id>/rules.json      the rule set (core.ranking.rules.RuleSet.to_json)
    data/releases/<id>/items.parquet   ... see FILES

Both are written by ``core.release.build``: files fsynced, the folder renamed into place, the pointer
replaced atomically. A reader checks an artifact against its manifest before trusting it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from core.config import settings
from core.errors import ArtifactError

FORMAT = "homepage-studio-release/1"
POINTER = "live"
MANIFEST = "manifest.json"
FILES = {  # name → what it holds (every table the ranking reads, as of the shop clock)
    "rules.json": "the published rule set",
    "items.parquet": "the item table in the model's dense order, with seller tier, promotion flag, side codes",
    "promotions.parquet": "promotions (item or category, discount, window)",
    "users.parquet": "shopper attributes (segment, region, device, first seen)",
    "history.parquet": "each shopper's recent steps: user_id, step, ts, item_id, event_type",
    "popularity.parquet": "30-day popularity per segment (the cold-start homepage)",
    "trending.parquet": "7-day event counts per item (the trending row)",
}
MODEL_DIR = "model"  # a copy of the model run's folder (absent for the popularity fallback)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(digests: dict[str, str]) -> str:
    """One hash over every file's name and sha256 (the manifest itself excluded)."""
    text = "".join(f"{name} {digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(text.encode()).hexdigest()


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def time_text(t: datetime | None) -> str | None:
    """A stored (naive UTC) or aware time as ISO 8601 with its offset."""
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


@dataclass(frozen=True)
class LiveEntry:
    """One release on the timeline: which artifact is served from when."""

    release_id: int
    artifact: str
    content_hash: str
    kind: str
    published_by: str
    published_at: datetime
    starts_at: datetime | None
    note: str
    rollback_of: int | None = None

    @property
    def effective_at(self) -> datetime:
        return self.starts_at or self.published_at

    def to_dict(self) -> dict:
        return {
            "release_id": self.release_id,
            "artifact": self.artifact,
            "content_hash": self.content_hash,
            "kind": self.kind,
            "published_by": self.published_by,
            "published_at": time_text(self.published_at),
            "starts_at": time_text(self.starts_at),
            "note": self.note,
            "rollback_of": self.rollback_of,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LiveEntry:
        return cls(
            int(d["release_id"]),
            str(d["artifact"]),
            str(d["content_hash"]),
            str(d["kind"]),
            str(d["published_by"]),
            _time(d["published_at"]),
            _time(d.get("starts_at")),
            str(d.get("note", "")),
            d.get("rollback_of"),
        )


@dataclass(frozen=True)
class LivePointer:
    """The timeline in effective order: the entry live when it was written, then scheduled ones."""

    timeline: tuple[LiveEntry, ...]

    def entry_at(self, now: datetime | None = None) -> LiveEntry:
        """The live entry at ``now`` (aware, default: now): the latest whose start has come."""
        now = now or datetime.now(UTC)
        started = [e for e in self.timeline if e.effective_at <= now]
        return started[-1] if started else self.timeline[0]

    def upcoming(self, now: datetime | None = None) -> list[LiveEntry]:
        now = now or datetime.now(UTC)
        return [e for e in self.timeline if e.effective_at > now]

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "timeline": [e.to_dict() for e in self.timeline]}, indent=1)


def read_pointer(root: Path | None = None) -> LivePointer | None:
    """The ``live`` pointer, or None before the first publish."""
    path = Path(root or settings().releases_dir) / POINTER
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        entries = tuple(LiveEntry.from_dict(d) for d in doc["timeline"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: the live pointer is not readable ({exc})") from None
    if doc.get("format") != FORMAT or not entries:
        raise ArtifactError(f"{path}: not a live pointer of format {FORMAT}")
    return LivePointer(entries)


@dataclass(frozen=True)
class Artifact:
    """One release artifact folder and its manifest."""

    path: Path
    manifest: dict

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def run_id(self) -> str | None:
        return self.manifest["model"]["run_id"]

    @property
    def model_kind(self) -> str:
        """The architecture of the release's model (releases from before it was recorded served an LSTM)."""
        return self.manifest["model"].get("kind", "lstm")

    @property
    def shop_clock(self) -> datetime:
        return datetime.fromisoformat(self.manifest["shop_clock"])

    @property
    def snapshot_hash(self) -> str:
        """One hash over everything but the rule set (the tables, the model, the shop clock): two artifacts
        with the same snapshot rank from the same context, so a switch between them reloads only the rules."""
        files = {n: m["sha256"] for n, m in self.manifest["files"].items() if n != "rules.json"}
        text = json.dumps([files, self.manifest["shop_clock"], self.manifest["model"]], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def files(self) -> list[str]:
        return sorted(self.manifest["files"])

    def file(self, name: str) -> Path:
        """A file the manifest lists (any other name is refused: no path leaves the folder)."""
        if name not in self.manifest["files"]:
            raise ArtifactError(f"{self.path}: the manifest lists no file '{name}'")
        return self.path / name

    def table(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.file(name if name.endswith(".parquet") else name + ".parquet"))

    def rules(self) -> dict:
        return json.loads(self.file("rules.json").read_text())

    def model_dir(self) -> Path | None:
        return self.path / MODEL_DIR if self.run_id else None

    def verify(self) -> None:
        """Raise ArtifactError unless every listed file is there with its recorded sha256, and nothing else."""
        listed = self.manifest["files"]
        on_disk = {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}
        extra = on_disk - set(listed) - {MANIFEST}
        if extra:
            raise ArtifactError(f"{self.path}: files the manifest does not list: {sorted(extra)[:5]}")
        for name, meta in listed.items():
            path = self.path / name
            if not path.is_file():
                raise ArtifactError(f"{self.path}: {name} is missing")
            if file_digest(path) != meta["sha256"]:
                raise ArtifactError(f"{self.path}: {name} does not match its sha256 in the manifest")
        if content_hash({n: m["sha256"] for n, m in listed.items()}) != self.content_hash:
            raise ArtifactError(f"{self.path}: the content hash does not match the files")


def open_artifact(path: str | Path, verify: bool = True) -> Artifact:
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: no readable {MANIFEST} ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    artifact = Artifact(path, manifest)
    if verify:
        artifact.verify()
    return artifact


def open_live(
    root: Path | None = None, now: datetime | None = None, verify: bool = True
) -> tuple[LiveEntry, Artifact]:
    """The live entry at ``now`` and its artifact (ArtifactError when nothing was published yet)."""
    root = Path(root or settings().releases_dir)
    pointer = read_pointer(root)
    if pointer is None:
        raise ArtifactError(f"{root}: nothing is published yet — run `python -m core publish --note …`")
    entry = pointer.entry_at(now)
    artifact = open_artifact(root / entry.artifact, verify=verify)
    if artifact.content_hash != entry.content_hash:
        raise ArtifactError(f"{root / entry.artifact}: content hash differs from the live pointer's")
    return entry, artifact
