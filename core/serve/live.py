"""The release a server process serves now, switched without a restart and without a failed request.

``LiveRelease(root)`` holds one reference to a ``ServedRelease``. A request reads it once
(``current()``) and computes everything from that object, so a request in flight when the release
changes finishes on the old one. ``refresh(now)`` reads the ``live`` pointer's timeline, picks the entry
live at ``now`` (a scheduled release goes live when its start time passes, with nobody publishing), and
when it differs from the served one builds the new release completely — verify the artifact against its
manifest, read its tables, load its model, build the ranking context (or, when only the rule set differs
from the served release's, share its context) — before it replaces the reference.
A background thread (``start``) calls ``refresh`` every ``poll_s`` seconds, off the request path.

A release that cannot be loaded (a damaged artifact) is not served: the old one stays, the error is kept
for ``/healthz`` and ``/metrics``, and the same artifact is tried again only after ``retry_s``. A rollback
to the artifact already served is a new release id on the same context: no reload.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ArtifactError, StudioError
from core.release.artifact import LiveEntry, open_artifact, read_pointer
from core.serve.context import ServedRelease, load_release

log = logging.getLogger(__name__)


class NoLiveRelease(StudioError):
    """Nothing is published yet (or the only release could not be loaded): the API answers 503."""


class LiveRelease:
    """The served release of one process and the watcher that switches it."""

    def __init__(
        self,
        root: Path,
        poll_s: float = 1.0,
        retry_s: float = 30.0,
        on_switch: Callable[[ServedRelease], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ):
        self.root = Path(root)
        self.poll_s, self.retry_s = poll_s, retry_s
        self.on_switch, self.on_error = on_switch, on_error
        self._served: ServedRelease | None = None
        self._upcoming: list[LiveEntry] = []
        self._failed: dict[str, float] = {}  # content hash → when loading it last failed
        self.error: str | None = None  # the last load's error, while it is not resolved
        self.switches = 0
        self._refresh_lock = threading.Lock()  # one refresh at a time (the watcher, a test, startup)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> ServedRelease:
        """The release to answer this request from (read once per request)."""
        served = self._served
        if served is None:
            raise NoLiveRelease(self.error or "no release is live yet: publish one (python -m core publish)")
        return served

    @property
    def upcoming(self) -> list[LiveEntry]:
        return list(self._upcoming)

    def refresh(self, now: datetime | None = None) -> bool:
        """Serve the entry live at ``now`` (default: now); True when the served release changed."""
        now = now or datetime.now(UTC)
        with self._refresh_lock:
            try:
                pointer = read_pointer(self.root)
            except ArtifactError as exc:
                return self._failure(None, str(exc))
            if pointer is None:
                return False
            self._upcoming = pointer.upcoming(now)
            entry = pointer.entry_at(now)
            served = self._served
            if served is not None and served.entry == entry:
                return False
            return self._switch(served, entry)

    def _switch(self, served: ServedRelease | None, entry: LiveEntry) -> bool:
        if served is not None and served.artifact.content_hash == entry.content_hash:
            new = dataclasses.replace(served, entry=entry, loaded_at=time.time())  # same artifact, new id
        else:
            failed_at = self._failed.get(entry.content_hash)
            if failed_at is not None and time.time() - failed_at < self.retry_s:
                return False
            try:
                artifact = open_artifact(self.root / entry.artifact)
                if artifact.content_hash != entry.content_hash:
                    raise ArtifactError(f"{artifact.path}: content hash differs from the live pointer's")
                new = load_release(entry, artifact, served)
            except (StudioError, OSError, ValueError, KeyError) as exc:
                self._failed[entry.content_hash] = time.time()
                return self._failure(entry, f"{type(exc).__name__}: {exc}")
        self._served = new  # one reference: requests already running keep the object they read
        self._failed.pop(entry.content_hash, None)
        self.error = None
        self.switches += served is not None
        log.info("serving release %s (%s)", entry.release_id, entry.content_hash[:12])
        if self.on_switch:
            self.on_switch(new)
        return True

    def _failure(self, entry: LiveEntry | None, message: str) -> bool:
        which = f"release {entry.release_id}" if entry else "the live pointer"
        self.error = f"{which} could not be loaded: {message}"
        log.error("%s", self.error)
        if self.on_error:
            self.on_error(self.error)
        return False

    def start(self) -> None:
        """Watch the pointer (and the clock) in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="release-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any one bad refresh; the old release stays
                log.exception("release refresh failed")
