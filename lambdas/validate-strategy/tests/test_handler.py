import pytest


@pytest.fixture
def registered(tables):
    tables.trading.put_item(
        Item={
            "pk": "strategy#ma-crossover",
            "name": "ma-crossover",
            "parameters": {"fast": 10, "slow": 30},
        }
    )


def test_valid_job_is_normalised(handler, context, registered, job_data):
    result = handler.lambda_handler({"job": {**job_data, "symbol": "BTC-USDT"}}, context)
    assert result["valid"] is True
    assert result["errors"] == []
    assert result["job"]["symbol"] == "BTC/USDT"


def test_unregistered_strategy(handler, context, tables, job_data):
    result = handler.lambda_handler({**job_data, "strategy": "rsi"}, context)
    assert result == {"valid": False, "errors": ["strategy 'rsi' is not registered"]}


def test_unknown_parameter(handler, context, registered, job_data):
    result = handler.lambda_handler({**job_data, "parameters": {"fast": 3, "window": 9}}, context)
    assert result["valid"] is False
    assert result["errors"] == ["unknown parameter(s) for ma-crossover: window"]


def test_malformed_job_needs_no_aws(handler, context, job_data):
    result = handler.lambda_handler({**job_data, "start": "2025-01-01"}, context)
    assert result["valid"] is False
    assert "must be before end" in result["errors"][0]
