import pytest

GOOD = {"sharpe": 1.8, "max_drawdown": 0.12}


@pytest.fixture
def registered(tables):
    tables.trading.put_item(Item={"pk": "strategy#ma-crossover", "latest_version": "1.0.0"})
    tables.trading.put_item(Item={"pk": "strategy#ma-crossover#1.0.0", "stage": "registered"})
    return tables.trading


def test_promotes_when_metrics_qualify(handler, context, registered):
    event = {"name": "ma-crossover", "version": "1.0.0", "metrics": GOOD}
    assert handler.lambda_handler(event, context)["promoted"] is True
    version = registered.get_item(Key={"pk": "strategy#ma-crossover#1.0.0"})["Item"]
    assert version["stage"] == "production"
    pointer = registered.get_item(Key={"pk": "strategy#ma-crossover"})["Item"]
    assert pointer["production_version"] == "1.0.0"


def test_refuses_weak_metrics_without_writing(handler, context, registered):
    event = {
        "name": "ma-crossover",
        "version": "1.0.0",
        "metrics": {"sharpe": 0.4, "max_drawdown": 0.5},
    }
    result = handler.lambda_handler(event, context)
    assert result == {
        "promoted": False,
        "reasons": ["sharpe 0.4 is below 1.0", "max_drawdown 0.5 exceeds 0.25"],
    }
    version = registered.get_item(Key={"pk": "strategy#ma-crossover#1.0.0"})["Item"]
    assert version["stage"] == "registered"


def test_thresholds_can_be_relaxed_for_staging(handler, context, registered, monkeypatch):
    monkeypatch.setenv("MIN_SHARPE", "0.3")
    event = {
        "name": "ma-crossover",
        "version": "1.0.0",
        "stage": "staging",
        "metrics": {"sharpe": 0.4, "max_drawdown": 0.1},
    }
    assert handler.lambda_handler(event, context)["stage"] == "staging"
    pointer = registered.get_item(Key={"pk": "strategy#ma-crossover"})["Item"]
    assert pointer["staging_version"] == "1.0.0"


def test_unregistered_version_and_bad_event(handler, context, registered):
    result = handler.lambda_handler(
        {"name": "ma-crossover", "version": "9.9.9", "metrics": GOOD}, context
    )
    assert result["reasons"] == ["ma-crossover 9.9.9 is not registered"]
    with pytest.raises(ValueError, match="stage"):
        handler.lambda_handler({"name": "x", "version": "1.0.0", "stage": "canary"}, context)
