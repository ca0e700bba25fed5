import json

import pytest


def alarm_event(state="ALARM", name="tradai-backend-5xx-dev"):
    return {
        "detail-type": "CloudWatch Alarm State Change",
        "region": "eu-central-1",
        "time": "2024-05-01T12:00:00Z",
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold crossed: 5 > 1"},
            "previousState": {"value": "OK"},
        },
    }


def test_alarm_is_published(handler, context, alerts):
    result = handler.lambda_handler(alarm_event(), context)
    assert result["published"] is True
    [message] = alerts.messages()
    assert message["Subject"] == "[tradai dev] ALARM: tradai-backend-5xx-dev"
    body = json.loads(message["Message"])
    assert body["previous_state"] == "OK"
    assert body["reason"] == "Threshold crossed: 5 > 1"


def test_ok_is_quiet_unless_enabled(handler, context, alerts, monkeypatch):
    assert handler.lambda_handler(alarm_event("OK"), context)["published"] is False
    assert alerts.messages() == []
    monkeypatch.setenv("NOTIFY_ON_OK", "true")
    assert handler.lambda_handler(alarm_event("OK"), context)["published"] is True


def test_long_subject_is_truncated(handler, context, alerts):
    handler.lambda_handler(alarm_event(name="x" * 200), context)
    assert len(alerts.messages()[0]["Subject"]) == 100


def test_rejects_other_events(handler, context):
    with pytest.raises(ValueError, match="not a CloudWatch alarm"):
        handler.lambda_handler({"detail": {}}, context)
