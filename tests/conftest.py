import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def db(tmp_path, monkeypatch):
    """A fresh, empty, migrated database in a temporary folder; returns its path."""
    monkeypatch.setenv("HS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HS_DB", str(tmp_path / "data" / "shop.duckdb"))
    from core import store

    path = tmp_path / "data" / "shop.duckdb"
    with store.connect(path):
        pass
    return path


@pytest.fixture(scope="session")
def demo_shop(tmp_path_factory):
    """A small demo shop with a trained, active model: shared by the page and e2e tests.

    Returns the data folder; tests that use it point ``HS_DATA``/``HS_DB`` at it (see ``use_demo``)."""
    data = tmp_path_factory.mktemp("demo") / "data"
    old = {k: os.environ.get(k) for k in ("HS_DATA", "HS_DB")}
    os.environ["HS_DATA"] = str(data)
    os.environ["HS_DB"] = str(data / "shop.duckdb")
    try:
        from core.data.demo import build_demo_shop
        from core.model_runs import train_run
        from models.lstm import LSTMConfig

        build_demo_shop(users=600, items=300, days=20, seed=3)
        train_run(time_budget_s=25, config=LSTMConfig(dim=32, max_epochs=3), activate=True)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return data


@pytest.fixture
def use_demo(demo_shop, monkeypatch):
    monkeypatch.setenv("HS_DATA", str(demo_shop))
    monkeypatch.setenv("HS_DB", str(demo_shop / "shop.duckdb"))
    return demo_shop
