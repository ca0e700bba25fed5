import json
from datetime import UTC, datetime, timedelta

import boto3

from tradai_common.models import WorkflowState
from tradai_common.state import WorkflowStore


def days_ago(n):
    return (datetime.now(tz=UTC) - timedelta(days=n)).isoformat(timespec="seconds")


def test_schedules_due_strategies_only(handler, context, tables, backtest_queue):
    trading = tables.trading
    trading.put_item(Item={"pk": "strategy#fresh", "name": "fresh", "last_trained_at": days_ago(1)})
    trading.put_item(Item={"pk": "strategy#old", "name": "old", "last_trained_at": days_ago(30)})
    trading.put_item(Item={"pk": "strategy#never", "name": "never", "parameters": {"fast": 3}})
    trading.put_item(
        Item={"pk": "strategy#drifting", "name": "drifting", "last_trained_at": days_ago(1)}
    )
    trading.put_item(Item={"pk": "live#drifting", "drift_detected": True})
    trading.put_item(Item={"pk": "strategy#old#1.0.0", "name": "old"})

    scheduled = handler.lambda_handler({}, context)["scheduled"]
    assert sorted(scheduled) == ["drifting", "never", "old"]

    store = WorkflowStore.from_settings()
    record = store.require(scheduled["never"])
    assert record.state is WorkflowState.QUEUED
    assert record.job.parameters == {"fast": 3}
    assert (record.job.end_at - record.job.start_at).days == 90

    messages = boto3.client("sqs").receive_message(QueueUrl=backtest_queue, MaxNumberOfMessages=10)
    assert {json.loads(m["Body"])["strategy"] for m in messages["Messages"]} == set(scheduled)

    # Their training clock was reset: a second run schedules nothing but the drifting one.
    assert list(handler.lambda_handler({}, context)["scheduled"]) == ["drifting"]


def test_nothing_due(handler, context, tables, backtest_queue):
    tables.trading.put_item(
        Item={"pk": "strategy#fresh", "name": "fresh", "last_trained_at": days_ago(2)}
    )
    assert handler.lambda_handler({}, context) == {"scheduled": {}}
