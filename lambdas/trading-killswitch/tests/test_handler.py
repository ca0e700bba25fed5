import boto3
import pytest


@pytest.fixture
def ecs(tables, monkeypatch):
    client = boto3.client("ecs")
    client.create_cluster(clusterName="tradai-dev")
    client.register_task_definition(
        family="trading", containerDefinitions=[{"name": "app", "image": "x", "memory": 256}]
    )
    for name in ("tradai-strategy-service-dev", "tradai-live-trading-dev"):
        client.create_service(
            cluster="tradai-dev", serviceName=name, taskDefinition="trading", desiredCount=2
        )
    monkeypatch.setenv("ECS_CLUSTER", "tradai-dev")
    return client


def desired(ecs, name):
    return ecs.describe_services(cluster="tradai-dev", services=[name])["services"][0][
        "desiredCount"
    ]


def test_activate_scales_services_to_zero_and_alerts(handler, context, ecs, alerts):
    result = handler.lambda_handler({"action": "activate", "reason": "exchange outage"}, context)
    assert result["active"] is True
    assert result["stopped_services"] == ["tradai-strategy-service-dev", "tradai-live-trading-dev"]
    assert desired(ecs, "tradai-strategy-service-dev") == 0
    assert desired(ecs, "tradai-live-trading-dev") == 0
    [message] = alerts.messages()
    assert message["Subject"] == "[tradai dev] kill switch ACTIVATED"
    status = handler.lambda_handler({"action": "status"}, context)
    assert status["active"] is True
    assert status["reason"] == "exchange outage"
    assert status["requested_by"] == "req-0001"


def test_deactivate_leaves_services_alone(handler, context, ecs):
    handler.lambda_handler(
        {"action": "activate", "reason": "test", "services": ["live-trading"]}, context
    )
    assert desired(ecs, "tradai-strategy-service-dev") == 2
    result = handler.lambda_handler({"action": "deactivate"}, context)
    assert result["active"] is False
    assert result["stopped_services"] == []
    assert handler.lambda_handler({"action": "status"}, context)["active"] is False


def test_status_before_any_change(handler, context, tables):
    assert handler.lambda_handler({"action": "status"}, context) == {"active": False}


def test_validation(handler, context, tables):
    with pytest.raises(ValueError, match="action must be"):
        handler.lambda_handler({"action": "pause"}, context)
    with pytest.raises(ValueError, match="needs a 'reason'"):
        handler.lambda_handler({"action": "activate"}, context)
