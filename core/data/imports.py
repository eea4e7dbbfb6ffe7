"""The files the app may load: a path typed in the browser only inside the import folders, and uploads
saved under a safe name in the data folder (removed after a week).

Any browser user can type a path, so a path is resolved first (``..`` and symlinks followed) and only then
checked against the import folders (``HS_IMPORT_DIRS``, default ``<data>/import``): a link inside an import
folder that points at ``/etc/passwd`` is refused like the path itself. The CLI does not come through here:
the operator at the shell may load any file the process can read.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

from core.config import settings
from core.errors import InputError, storage_error

UPLOAD_MAX_AGE_S = 7 * 24 * 3600  # uploads older than this are removed
MAX_NAME = 120  # characters kept of an upload's name
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def import_dirs() -> list[Path]:
    return [Path(d).resolve() for d in settings().import_dirs]


def confine(text: str) -> Path:
    """The file a browser user typed, resolved, if it lies inside an import folder; else a refusal naming
    the folders. A relative path is taken inside the first import folder."""
    folders = import_dirs()
    allowed = ", ".join(str(d) for d in folders)
    typed = (text or "").strip()
    if not typed or "\x00" in typed:
        raise InputError(
            "give the path of a file in an import folder", fix=f"put the file in {allowed} and type its path"
        )
    path = Path(typed)
    resolved = (path if path.is_absolute() else folders[0] / path).resolve()
    if not any(resolved.is_relative_to(folder) for folder in folders):
        raise InputError(
            f"the app only loads files from its import folder{'s' if len(folders) > 1 else ''} ({allowed})",
            file=typed,
            fix="copy the file there (HS_IMPORT_DIRS sets the folders) or upload it; at the shell, "
            "`python -m core ingest FILE` loads any file",
        )
    return resolved


def safe_name(name: str) -> str:
    """An upload's file name that is only a name: no folders, no ``..``, no hidden or empty name, only
    letters, digits and ``. _ -`` (the extension is kept: it says .gz or .parquet)."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = _UNSAFE.sub("_", base).lstrip("._-")
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:MAX_NAME]
    return base if base.strip("._-") else "upload"


def save_upload(name: str, data: bytes) -> Path:
    """An uploaded file written under a safe name into a fresh folder of the uploads folder; uploads older
    than a week are removed first."""
    remove_old_uploads()
    folder = settings().uploads_dir / uuid.uuid4().hex
    target = folder / safe_name(name)
    try:
        folder.mkdir(parents=True)
        target.write_bytes(data)
    except OSError as exc:  # a full disk or a read-only data folder, said as such
        shutil.rmtree(folder, ignore_errors=True)
        raise (storage_error(exc, folder) or exc) from exc
    return target


def remove_old_uploads(now: float | None = None) -> int:
    """Remove the upload folders last changed more than ``UPLOAD_MAX_AGE_S`` ago; returns how many."""
    root = settings().uploads_dir
    if not root.is_dir():
        return 0
    cutoff = (now or time.time()) - UPLOAD_MAX_AGE_S
    removed = 0
    for folder in root.iterdir():
        try:
            if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
                removed += 1
        except OSError:  # another session removed it first, or it is not ours to remove
            continue
    return removed
