from datetime import UTC, datetime, timedelta


def ago(seconds):
    return (datetime.now(tz=UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def test_reports_stale_and_unhealthy(handler, context, tables, alerts):
    tables.health.put_item(Item={"service": "backend", "checked_at": ago(30), "healthy": True})
    tables.health.put_item(Item={"service": "mlflow", "checked_at": ago(3600), "healthy": True})
    tables.health.put_item(
        Item={"service": "data-collection", "checked_at": ago(10), "healthy": False}
    )
    tables.health.put_item(Item={"service": "ghost"})
    result = handler.lambda_handler({}, context)
    assert result["stale"] == {"ghost": "never", "mlflow": result["stale"]["mlflow"]}
    assert result["unhealthy"] == ["data-collection"]
    [message] = alerts.messages()
    assert message["Subject"] == "[tradai dev] heartbeat: 2 stale, 1 unhealthy"


def test_max_age_from_event(handler, context, tables, alerts):
    tables.health.put_item(Item={"service": "backend", "checked_at": ago(600), "healthy": True})
    assert handler.lambda_handler({"max_age_seconds": 900}, context)["stale"] == {}
    assert alerts.messages() == []
    assert list(handler.lambda_handler({"max_age_seconds": 60}, context)["stale"]) == ["backend"]
