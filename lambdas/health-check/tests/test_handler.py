import boto3


def test_healthy_platform_is_recorded(handler, context, tables, backtest_queue, alerts):
    result = handler.lambda_handler({}, context)
    assert result["healthy"] is True
    assert set(result["checks"]) == {
        "workflow_table",
        "health_table",
        "trading_table",
        "backtest_queue",
    }
    item = tables.health.get_item(Key={"service": "platform"})["Item"]
    assert item["status"] == "healthy"
    assert alerts.messages() == []


def test_missing_resource_raises_alert(handler, context, tables, alerts, monkeypatch):
    monkeypatch.setenv("RESULTS_BUCKET", "tradai-results-dev")  # never created
    result = handler.lambda_handler({}, context)
    assert result["healthy"] is False
    assert result["checks"]["results_bucket"] is False
    [message] = alerts.messages()
    assert message["Subject"] == "[tradai dev] unhealthy: results_bucket"


def test_bucket_check_passes_when_bucket_exists(handler, context, tables, monkeypatch):
    boto3.client("s3").create_bucket(
        Bucket="tradai-results-dev",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    monkeypatch.setenv("RESULTS_BUCKET", "tradai-results-dev")
    assert handler.lambda_handler({"service": "nightly"}, context)["checks"]["results_bucket"]
    assert tables.health.get_item(Key={"service": "nightly"})["Item"]["healthy"] is True


def test_without_tables_everything_fails_but_handler_returns(handler, context, aws):
    result = handler.lambda_handler({}, context)
    assert result["healthy"] is False
    assert result["checks"] == {
        "workflow_table": False,
        "health_table": False,
        "trading_table": False,
    }
