"""Backtest queue, status queue and their shared dead-letter queue (server-side encrypted).

The backtest queue carries BacktestJobs to the backtest-consumer Lambda; the status queue
carries status updates posted by backtest tasks to the sqs-consumer Lambda.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import get_resource_name, get_tags

MAX_RECEIVE_COUNT = 3
FOURTEEN_DAYS = 14 * 24 * 3600


class Queues:
    def __init__(self) -> None:
        tags = get_tags("backtest")
        self.dlq = aws.sqs.Queue(
            "backtest-dlq",
            name=get_resource_name("backtest-dlq"),
            message_retention_seconds=FOURTEEN_DAYS,
            sqs_managed_sse_enabled=True,
            tags=tags,
        )
        self.backtest = aws.sqs.Queue(
            "backtest-queue",
            name=get_resource_name("backtest-queue"),
            # Six times the consumer Lambda's timeout, as AWS recommends for event sources.
            visibility_timeout_seconds=900,
            message_retention_seconds=4 * 24 * 3600,
            receive_wait_time_seconds=20,
            sqs_managed_sse_enabled=True,
            redrive_policy=self.dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
            ),
            tags=tags,
        )
        self.status = aws.sqs.Queue(
            "status-queue",
            name=get_resource_name("backtest-status"),
            visibility_timeout_seconds=360,
            message_retention_seconds=4 * 24 * 3600,
            receive_wait_time_seconds=20,
            sqs_managed_sse_enabled=True,
            redrive_policy=self.dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
            ),
            tags=tags,
        )
        aws.sqs.RedriveAllowPolicy(
            "backtest-dlq-redrive-allow",
            queue_url=self.dlq.url,
            redrive_allow_policy=pulumi.Output.all(self.backtest.arn, self.status.arn).apply(
                lambda arns: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": list(arns)})
            ),
        )
