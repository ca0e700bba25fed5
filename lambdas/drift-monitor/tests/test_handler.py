from decimal import Decimal


def seed(table):
    table.put_item(
        Item={
            "pk": "live#ma-crossover",
            "backtest_sharpe": Decimal("1.8"),
            "live_sharpe": Decimal("0.9"),
        }
    )
    table.put_item(
        Item={
            "pk": "live#mean-revert",
            "backtest_sharpe": Decimal("1.2"),
            "live_sharpe": Decimal("1.1"),
        }
    )
    table.put_item(Item={"pk": "live#new", "backtest_sharpe": Decimal("1.0")})
    table.put_item(Item={"pk": "strategy#ma-crossover", "backtest_sharpe": Decimal("9")})


def test_flags_drift_and_alerts(handler, context, tables, alerts):
    seed(tables.trading)
    result = handler.lambda_handler({}, context)
    assert result == {"checked": 2, "drifted": {"ma-crossover": 0.9}}
    flagged = tables.trading.get_item(Key={"pk": "live#ma-crossover"})["Item"]
    assert flagged["drift_detected"] is True
    assert flagged["drift"] == Decimal("0.9")
    fine = tables.trading.get_item(Key={"pk": "live#mean-revert"})["Item"]
    assert fine["drift_detected"] is False
    [message] = alerts.messages()
    assert message["Subject"] == "[tradai dev] drift: ma-crossover"


def test_threshold_from_event(handler, context, tables, alerts):
    seed(tables.trading)
    assert handler.lambda_handler({"threshold": 1.0}, context)["drifted"] == {}
    assert alerts.messages() == []
    drifted = handler.lambda_handler({"threshold": 0.05}, context)["drifted"]
    assert set(drifted) == {"ma-crossover", "mean-revert"}
