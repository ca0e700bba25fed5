"""backtest-consumer: start an ECS task for each backtest job on the queue.

SQS trigger (backtest queue, partial batch responses enabled). Each message body is
a BacktestJob. The record moves QUEUED -> RUNNING and the backtest task definition
runs on ``ECS_CLUSTER`` with ``JOB_ID`` in its environment. A job whose task cannot
start is marked FAILED; malformed messages are reported back to SQS (-> DLQ).
"""

from __future__ import annotations

import json
from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import StateConflictError, WorkflowStore

logger = get_logger("tradai.lambda.backtest_consumer")
CONTAINER = "backtest"


def _run_task(ecs: Any, settings: Settings, job: BacktestJob) -> str:
    kwargs: dict[str, Any] = {
        "cluster": settings.require("ecs_cluster"),
        "taskDefinition": settings.require("backtest_task_definition"),
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": job.job_id[:36],
        "overrides": {
            "containerOverrides": [
                {"name": CONTAINER, "environment": [{"name": "JOB_ID", "value": job.job_id}]}
            ]
        },
    }
    if settings.backtest_subnets:
        kwargs["networkConfiguration"] = {
            "awsvpcConfiguration": {
                "subnets": list(settings.backtest_subnets),
                "securityGroups": list(settings.backtest_security_groups),
                "assignPublicIp": "DISABLED",
            }
        }
    response = ecs.run_task(**kwargs)
    if response.get("failures") or not response.get("tasks"):
        raise RuntimeError(f"run_task failed: {response.get('failures')}")
    return str(response["tasks"][0]["taskArn"])


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    store = WorkflowStore.from_settings(settings)
    ecs = aws.client("ecs", settings)
    failures = []
    for record in event.get("Records", []):
        try:
            job = BacktestJob.from_dict(json.loads(record["body"]))
            store.update_status(job.job_id, WorkflowState.RUNNING, expected=WorkflowState.QUEUED)
        except StateConflictError as exc:  # already started or cancelled: drop it
            logger.info("skipping job", extra={"reason": str(exc)})
            continue
        except (ValueError, LookupError) as exc:
            logger.error(
                "bad backtest message",
                extra={"message_id": record.get("messageId"), "error": str(exc)},
            )
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        try:
            task_arn = _run_task(ecs, settings, job)
        except Exception as exc:
            store.update_status(job.job_id, WorkflowState.FAILED, error=str(exc))
            logger.exception("backtest task did not start", extra={"job_id": job.job_id})
            continue
        logger.info("backtest task started", extra={"job_id": job.job_id, "task_arn": task_arn})
    return {"batchItemFailures": failures}
