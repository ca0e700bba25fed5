"""alert-notifier: turn CloudWatch alarm state changes into readable alerts.

EventBridge trigger (``detail-type: CloudWatch Alarm State Change``). Publishes a
short subject and a JSON body to ``ALERTS_TOPIC_ARN``. Transitions back to OK are
published only when ``NOTIFY_ON_OK`` is ``true``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.settings import Settings

logger = get_logger("tradai.lambda.alert_notifier")
SUBJECT_LIMIT = 100  # SNS rejects longer subjects


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event.get("detail") or {}
    alarm = detail.get("alarmName")
    state = (detail.get("state") or {}).get("value")
    if not alarm or not state:
        raise ValueError("not a CloudWatch alarm state change event")
    notify_ok = os.environ.get("NOTIFY_ON_OK", "false").lower() == "true"
    if state == "OK" and not notify_ok:
        return {"published": False, "alarm": alarm, "state": state}

    settings = Settings.from_env()
    previous = (detail.get("previousState") or {}).get("value", "UNKNOWN")
    subject = f"[tradai {settings.environment}] {state}: {alarm}"[:SUBJECT_LIMIT]
    body = {
        "alarm": alarm,
        "state": state,
        "previous_state": previous,
        "reason": (detail.get("state") or {}).get("reason", ""),
        "region": event.get("region", settings.region),
        "time": event.get("time"),
    }
    message_id = aws.client("sns", settings).publish(
        TopicArn=settings.require("alerts_topic_arn"),
        Subject=subject,
        Message=json.dumps(body, indent=2),
        MessageAttributes={"severity": {"DataType": "String", "StringValue": state}},
    )["MessageId"]
    logger.info("alert published", extra={"alarm": alarm, "state": state, "message_id": message_id})
    return {"published": True, "alarm": alarm, "state": state, "message_id": message_id}
