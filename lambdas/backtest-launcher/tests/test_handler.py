import json

import boto3
import pytest


def test_valid_job_is_recorded_and_queued(handler, context, tables, backtest_queue, job_data):
    result = handler.lambda_handler({"job": job_data}, context)
    assert result == {"accepted": True, "job_id": "job-1", "state": "QUEUED"}
    item = tables.workflow.get_item(Key={"job_id": "job-1"})["Item"]
    assert item["state"] == "QUEUED"
    messages = boto3.client("sqs").receive_message(
        QueueUrl=backtest_queue, MessageAttributeNames=["All"]
    )["Messages"]
    assert json.loads(messages[0]["Body"])["symbol"] == "BTC/USDT"
    assert messages[0]["MessageAttributes"]["strategy"]["StringValue"] == "ma-crossover"


def test_invalid_job_is_rejected_without_side_effects(
    handler, context, tables, backtest_queue, job_data
):
    result = handler.lambda_handler({**job_data, "timeframe": "3h"}, context)
    assert result["accepted"] is False
    assert "timeframe must be one of" in result["error"]
    assert tables.workflow.scan()["Count"] == 0
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=backtest_queue)


def test_duplicate_job_is_not_queued_twice(handler, context, tables, backtest_queue, job_data):
    handler.lambda_handler(job_data, context)
    again = handler.lambda_handler(job_data, context)
    assert again["accepted"] is False
    assert "already exists" in again["error"]
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=backtest_queue, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"


def test_queue_must_be_configured(handler, context, tables, job_data):
    with pytest.raises(ValueError, match="backtest_queue_url"):
        handler.lambda_handler(job_data, context)
