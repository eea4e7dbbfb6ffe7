"""The Model page lets a run choose its architecture and shows runs side by side on the same split."""

import pytest

from core.model_runs import compare_runs, train_run
from core.release.roles import SYSTEM
from models.lstm import LSTMConfig
from models.transformer import TransformerConfig
from tests.integration.test_model_runs import SMALL, make_shop

pytestmark = pytest.mark.slow


@pytest.fixture
def two_runs(db):
    make_shop()
    first = train_run(actor=SYSTEM, config=LSTMConfig(**SMALL), epochs=1, time_budget_s=60)
    second = train_run(
        actor=SYSTEM,
        architecture="transformer",
        config=TransformerConfig(**SMALL),
        epochs=1,
        time_budget_s=60,
    )
    return first, second


def test_runs_compare_on_the_same_split(two_runs):
    compared = compare_runs()
    runs = set(compared["run"].to_list())
    assert runs == {
        f"lstm · {two_runs[0].run_id}",
        f"transformer · {two_runs[1].run_id}",
        "popularity (same split)",
    }
    assert set(compared["metric"].to_list()) == {"HR@10", "NDCG@10"}


def test_model_page_offers_every_architecture_and_draws_the_comparison(two_runs):
    from tests.conftest import page_signed_in_as

    at = page_signed_in_as("model", "ada")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox[0].label == "Architecture"
    assert at.selectbox[0].options == [
        "LSTM",
        "Transformer (SASRec-style)",
        "Blend (3 transformer seeds + item-kNN + EASE up to 20,000 items + popularity)",
    ]
    assert any("same split" in c.value for c in at.caption)
