"""strategy-registration: register a new strategy version.

Event: ``{"name": "ma-crossover", "version": "1.2.0", "parameters": {...},
"mlflow_run_id"?: "..."}``. Writes ``strategy#<name>#<version>`` to the trading-state
table (refusing to overwrite an existing version), points ``strategy#<name>`` at it and
announces it on ``REGISTRATION_TOPIC_ARN`` when configured.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import utc_now
from tradai_common.settings import Settings
from tradai_common.state import to_dynamo

logger = get_logger("tradai.lambda.strategy_registration")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name, version = event.get("name"), event.get("version")
    parameters = event.get("parameters", {})
    if not isinstance(name, str) or not NAME_RE.match(name):
        return {"registered": False, "error": f"invalid strategy name {name!r}"}
    if not isinstance(version, str) or not VERSION_RE.match(version):
        return {"registered": False, "error": f"version must be MAJOR.MINOR.PATCH, got {version!r}"}
    if not isinstance(parameters, dict):
        return {"registered": False, "error": "parameters must be an object"}

    settings = Settings.from_env()
    table = aws.resource("dynamodb", settings).Table(settings.trading_table)
    now = utc_now()
    item = {
        "name": name,
        "version": version,
        "parameters": parameters,
        "stage": "registered",
        "mlflow_run_id": event.get("mlflow_run_id"),
        "registered_at": now,
    }
    try:
        table.put_item(
            Item=to_dynamo({"pk": f"strategy#{name}#{version}", **item}),
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return {"registered": False, "error": f"{name} {version} is already registered"}
    table.put_item(Item=to_dynamo({"pk": f"strategy#{name}", **item, "latest_version": version}))
    if settings.registration_topic_arn:
        aws.client("sns", settings).publish(
            TopicArn=settings.registration_topic_arn,
            Subject=f"Strategy registered: {name} {version}",
            Message=json.dumps(item),
        )
    logger.info("strategy registered", extra={"strategy": name, "version": version})
    return {"registered": True, "name": name, "version": version}
