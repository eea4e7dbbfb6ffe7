"""The latest GET answers of one API process, encoded, by (release id, endpoint, parameters).

A GET answer is a pure function of the served release and the request's parameters: the release fixes the
model, the snapshot, the rules and the shop clock they are applied at, and no request changes any of it.
So the same request to the same release gets the same bytes, whether computed now or kept from before; a
new release id is a new key (a switch never serves an old release's answer as the new one's). A shopper
who reloads the homepage or goes back to a product page is answered without ranking again. POST homepage
(this visit's events) is never kept. Bounded: the ``size`` most recently used answers (``HS_SERVE_CACHE``,
0 turns it off); a homepage is about 15 kB, so 2,048 answers hold about 30 MB per worker.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi.responses import Response


def encode(body: dict) -> bytes:
    """The JSON text starlette's JSONResponse writes (compact, UTF-8, no NaN)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def json_answer(body: bytes, release_id: int) -> Response:
    return Response(body, media_type="application/json", headers={"X-Release-Id": str(release_id)})


class AnswerCache:
    """A bounded least-recently-used map of encoded answers; ``on_lookup(hit)`` is told of every lookup."""

    def __init__(self, size: int, on_lookup: Callable[[bool], None] | None = None):
        self.size = max(0, size)
        self.on_lookup = on_lookup
        self._answers: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()  # a TestClient or a threadpool may share the process

    def __len__(self) -> int:
        return len(self._answers)

    def answer(self, release_id: int, key: tuple, compute: Callable[[], dict]) -> Response:
        """The answer to ``key`` from release ``release_id``: kept, or ``compute()``d (and kept). An error
        raised by ``compute`` (an unknown item: 404) is raised, never kept."""
        full = (release_id, *key)
        with self._lock:
            body = self._answers.get(full)
            if body is not None:
                self._answers.move_to_end(full)
        if self.on_lookup and self.size:
            self.on_lookup(body is not None)
        if body is None:
            body = encode(compute())
            if self.size:
                with self._lock:
                    self._answers[full] = body
                    while len(self._answers) > self.size:
                        self._answers.popitem(last=False)
        return json_answer(body, release_id)
