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
    "HS_IMPORT_DIRS",
)


def settings() -> Settings:
    """The settings for the current ``HS_*`` variables (and working folder): a change between calls is seen,
    as tests need, while the homepage hot path does not resolve paths on every call."""
    return copy.copy(_settings_for(os.getcwd(), tuple(os.environ.get(name) for name in ENV)))


@functools.lru_cache(maxsize=64)
def _settings_for(cwd: str, env: tuple) -> Settings:
    return Settings()
