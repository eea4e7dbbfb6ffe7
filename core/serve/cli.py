"""``python -m core serve``: the storefront API under uvicorn (see ``core.serve.api``).

Server setup for a small machine: one worker process per core (``HS_SERVE_WORKERS``, default 2), each
answering one request at a time on its event loop with one torch thread (``HS_INFER_THREADS``) and one
thread for numpy's BLAS, OpenMP and polars (``core.config.single_threaded_math``; with a single worker,
run in this process, polars and BLAS keep the pools they started with). The work
per request is CPU bound Python, numpy and torch: two processes use two cores, while threads in one
process would wait on the GIL and on each other. uvicorn's access log is off (one line per request costs
more than a similar-items answer), the listen backlog holds a burst of a few thousand connections, and
the workers share a metrics folder so ``/metrics`` reports the whole server. Every connection has
``TCP_NODELAY`` (``core.serve.protocol``): without it each response waited ~40 ms for a delayed ACK.
"""

from __future__ import annotations

import shutil
import tempfile

from core.config import settings, share_metrics_dir, single_threaded_math
from core.errors import ArtifactError


def _served_now() -> str:
    from core.release.artifact import read_pointer

    try:
        pointer = read_pointer()
    except ArtifactError as exc:
        return f"the live pointer cannot be read ({exc}); the API answers 503 until it can"
    if pointer is None:
        return "nothing is published yet: the API answers 503 until a release is live"
    entry = pointer.entry_at()
    return f"serving release {entry.release_id} (artifact {entry.artifact}), switching when `live` changes"


def cmd_serve(args) -> int:
    import uvicorn

    workers = max(1, args.workers or settings().serve_workers)
    metrics_dir = None
    if workers > 1 and not settings().metrics_dir:
        metrics_dir = tempfile.mkdtemp(prefix="hs-metrics-")
        share_metrics_dir(metrics_dir)
    single_threaded_math()  # the workers are new processes: they start with these limits
    print(
        f"storefront API on http://{args.host}:{args.port} ({workers} worker(s)); {_served_now()}", flush=True
    )
    try:
        uvicorn.run(
            "core.serve.api:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=workers,
            access_log=False,
            log_level=args.log_level,
            backlog=4096,
            server_header=False,
            timeout_keep_alive=30,
            http="core.serve.protocol:NoDelayH11Protocol",  # no 40 ms Nagle/delayed-ACK stall per response
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="the storefront API: serve the live release over HTTP (no database)")
    p.add_argument("--port", type=int, default=8600)
    p.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: this machine only)"
    )
    p.add_argument("--workers", type=int, help="worker processes (default: HS_SERVE_WORKERS, 2)")
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=cmd_serve)
