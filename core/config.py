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


ENV = ("HS_DATA", "HS_DB", "HS_DEVICE", "HS_LOCK_WAIT", "HS_IMPORT_DIRS")


def settings() -> Settings:
    """The settings for the current ``HS_*`` variables (and working folder): a change between calls is seen,
    as tests need, while the homepage hot path does not resolve paths on every call."""
    return copy.copy(_settings_for(os.getcwd(), tuple(os.environ.get(name) for name in ENV)))


@functools.lru_cache(maxsize=64)
def _settings_for(cwd: str, env: tuple) -> Settings:
    return Settings()
