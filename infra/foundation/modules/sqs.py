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
        # Six times the consumer Lambda's timeout, as AWS recommends for event sources.
        self.backtest = self._worker_queue("backtest-queue", "backtest-queue", 900, tags)
        self.status = self._worker_queue("status-queue", "backtest-status", 360, tags)
        aws.sqs.RedriveAllowPolicy(
            "backtest-dlq-redrive-allow",
            queue_url=self.dlq.url,
            redrive_allow_policy=pulumi.Output.all(self.backtest.arn, self.status.arn).apply(
                lambda arns: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": list(arns)})
            ),
        )

    def _worker_queue(self, logical: str, name: str, visibility_timeout: int, tags: dict[str, str]) -> aws.sqs.Queue:
        """A queue consumed by a Lambda: long polling, encrypted, failures to the DLQ."""
        return aws.sqs.Queue(
            logical,
            name=get_resource_name(name),
            visibility_timeout_seconds=visibility_timeout,
            message_retention_seconds=4 * 24 * 3600,
            receive_wait_time_seconds=20,
            sqs_managed_sse_enabled=True,
            redrive_policy=self.dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
            ),
            tags=tags,
        )
