"""dlq-redrive: move messages from the backtest DLQ back to the backtest queue.

Invoked by hand (or by a runbook) after the cause of the failures is fixed. Event:
``{"max_messages": 100, "dry_run": false}``. A message is deleted from the DLQ only
after it was sent to the queue, so a failure part-way loses nothing.
"""

from __future__ import annotations

from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.settings import Settings

logger = get_logger("tradai.lambda.dlq_redrive")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    dlq_url = settings.require("backtest_dlq_url")
    queue_url = settings.require("backtest_queue_url")
    limit = int(event.get("max_messages", 100))
    if limit <= 0:
        raise ValueError("max_messages must be positive")
    dry_run = bool(event.get("dry_run", False))
    sqs = aws.client("sqs", settings)

    moved = 0
    while moved < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - moved),
            MessageAttributeNames=["All"],
            VisibilityTimeout=30,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            if not dry_run:
                sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=message["Body"],
                    MessageAttributes=message.get("MessageAttributes", {}),
                )
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
        if dry_run:
            break
    logger.info("dlq redriven", extra={"moved": moved, "dry_run": dry_run})
    return {"redriven": 0 if dry_run else moved, "seen": moved, "dry_run": dry_run}
