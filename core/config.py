"""Settings: one dataclass, defaults that work out of the box, ``HS_*`` environment overrides."""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def _env_paths(name: str) -> list[Path]:
    value = os.environ.get(name, "")
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: _env_path("HS_DATA", ROOT / "data"))
    db_path: Path | None = None  # HS_DB, else <data_dir>/shop.duckdb
    device: str = field(default_factory=lambda: os.environ.get("HS_DEVICE", "auto"))
    lock_wait_s: float = field(default_factory=lambda: float(os.environ.get("HS_LOCK_WAIT", "60")))
    # HS_IMPORT_DIRS (os.pathsep-separated): the only folders the app loads server files from;
    # default <data_dir>/import
    import_dirs: list[Path] = field(default_factory=lambda: _env_paths("HS_IMPORT_DIRS"))
    # the shop clock for previews of a log snapshot (ISO time); None = the latest event
    now: str | None = field(default_factory=lambda: os.environ.get("HS_NOW") or None)
    # torch threads for serving one homepage: single-user passes are tiny, and threads wait on each other
    infer_threads: int = field(default_factory=lambda: int(os.environ.get("HS_INFER_THREADS", "1")))
    # torch threads for training and benchmarks
    train_threads: int = field(default_factory=lambda: int(os.environ.get("HS_THREADS", os.cpu_count() or 1)))
    # the CLI signs in as HS_USER with HS_PASSWORD, or with a token file made by `python -m core users token`
    user: str = field(default_factory=lambda: os.environ.get("HS_USER", ""))
    password: str = field(default_factory=lambda: os.environ.get("HS_PASSWORD", ""), repr=False)
    token_file: str = field(default_factory=lambda: os.environ.get("HS_TOKEN_FILE", ""))
    # a browser session ends this many hours after sign-in, or after this many idle minutes
    session_hours: float = field(default_factory=lambda: float(os.environ.get("HS_SESSION_HOURS", "8")))
    session_idle_min: float = field(
        default_factory=lambda: float(os.environ.get("HS_SESSION_IDLE_MIN", "60"))
    )

    # the storefront API (python -m core serve): an API key the /v1 endpoints require when set (header
    # X-API-Key), the browser origins CORS allows (comma-separated; none: CORS off), worker processes,
    # and how often each worker looks at the live pointer (seconds)
    api_key: str = field(default_factory=lambda: os.environ.get("HS_API_KEY", ""), repr=False)
    cors_origins: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            o.strip() for o in os.environ.get("HS_CORS_ORIGINS", "").split(",") if o.strip()
        )
    )
    serve_workers: int = field(default_factory=lambda: int(os.environ.get("HS_SERVE_WORKERS", "2")))
    serve_poll_s: float = field(default_factory=lambda: float(os.environ.get("HS_SERVE_POLL", "1")))
    # GET answers each worker keeps per (release, request) (core.serve.answers; 0: none)
    serve_cache: int = field(default_factory=lambda: int(os.environ.get("HS_SERVE_CACHE", "2048")))
    # where the API's worker processes keep their metrics for /metrics to add up: prometheus-client's own
    # variable, set by `python -m core serve` for its workers (empty: one process, metrics in memory)
    metrics_dir: str = field(default_factory=lambda: os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))

    def __post_init__(self) -> None:
        if self.db_path is None:
            self.db_path = _env_path("HS_DB", self.data_dir / "shop.duckdb")
        if not self.import_dirs:
            self.import_dirs = [self.data_dir / "import"]

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def releases_dir(self) -> Path:
        return self.data_dir / "releases"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def secret_key_path(self) -> Path:
        """The key of the shopper pseudonyms (created on first use, readable by the owner only)."""
        return self.data_dir / "secret.key"


ENV = (
    "HS_DATA",
    "HS_DB",
    "HS_DEVICE",
    "HS_LOCK_WAIT",
    "HS_NOW",
    "HS_INFER_THREADS",
    "HS_THREADS",
    "HS_USER",
    "HS_PASSWORD",
    "HS_TOKEN_FILE",
    "HS_SESSION_HOURS",
    "HS_SESSION_IDLE_MIN",
    "HS_API_KEY",
    "HS_CORS_ORIGINS",
    "HS_SERVE_WORKERS",
    "HS_SERVE_POLL",
    "PROMETHEUS_MULTIPROC_DIR",
    "HS_IMPORT_DIRS",
)


def settings() -> Settings:
    """The settings for the current ``HS_*`` variables (and working folder): a change between calls is seen,
    as tests need, while the homepage hot path does not resolve paths on every call."""
    return copy.copy(_settings_for(os.getcwd(), tuple(os.environ.get(name) for name in ENV)))


@functools.lru_cache(maxsize=64)
def _settings_for(cwd: str, env: tuple) -> Settings:
    return Settings()


def share_metrics_dir(path: str) -> None:
    """Give the storefront API's worker processes (started after this call) one folder for their metrics:
    prometheus-client's multi-process mode reads this variable when each worker imports it."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


# thread pools of the numeric libraries, each sized to the core count by default
MATH_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS")


def single_threaded_math() -> None:
    """One thread per numeric library in processes started after this call (the API's workers): with one
    worker per core, every library's own pool of core-count threads only contends with the other workers
    (on 2 busy cores a homepage took 3x longer). A variable already set is left as it is."""
    for name in MATH_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


# what a child process must not inherit: it signs in with what its parent hands it, nothing more
SIGN_IN_VARIABLES = ("HS_USER", "HS_PASSWORD", "HS_TOKEN_FILE")


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a child process (a training job) without this process's sign-in, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SIGN_IN_VARIABLES}
    return {**env, **extra}
