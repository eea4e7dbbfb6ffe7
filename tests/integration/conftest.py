import pytest

from tests.conftest import ACCOUNTS, copy_shop


@pytest.fixture
def shop(demo_shop, tmp_path, monkeypatch):
    """A fresh copy of the demo shop (trained model, ``ACCOUNTS``, nothing published): its data folder."""
    data = copy_shop(demo_shop, tmp_path / "data")
    monkeypatch.setenv("HS_DATA", str(data))
    monkeypatch.setenv("HS_DB", str(data / "shop.duckdb"))
    return data


@pytest.fixture
def actor(shop):
    """Sign an account of ``ACCOUNTS`` in (password, rate limit and all): ``actor("mia")`` → Account."""
    from core.release import auth

    return lambda name: auth.authenticate(name, ACCOUNTS[name][1])
