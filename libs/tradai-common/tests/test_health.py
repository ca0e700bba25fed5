import boto3
from moto import mock_aws

import tradai_common.aws as aws
from tradai_common.health import (
    dynamodb_table_check,
    record_health,
    run_checks,
    s3_bucket_check,
    sqs_queue_check,
)
from tradai_common.models import HealthStatus
from tradai_common.state import create_table


def test_run_checks_aggregates_and_survives_exceptions():
    def broken():
        raise ConnectionError("refused")

    status = run_checks(
        "backend",
        {"ok": lambda: True, "detail": lambda: (True, "fine"), "bad": lambda: False, "err": broken},
    )
    assert status.healthy is False
    assert status.checks == {"ok": True, "detail": True, "bad": False, "err": False}
    assert status.details["detail"] == "fine"
    assert status.details["err"] == "ConnectionError: refused"
    assert status.failed_checks == ["bad", "err"]


def test_all_passing_is_healthy():
    status = run_checks("svc", {"a": lambda: True})
    assert status.healthy
    assert status.details["a"].endswith("ms")
    assert run_checks("empty", {}).healthy


@mock_aws
def test_aws_checks_against_mocked_resources():
    create_table(aws.resource("dynamodb"), "tradai-health-state-dev", "service")
    queue_url = aws.client("sqs").create_queue(QueueName="backtests")["QueueUrl"]
    aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody="{}")
    aws.client("s3").create_bucket(
        Bucket="data", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    status = run_checks(
        "health-check",
        {
            "table": dynamodb_table_check("tradai-health-state-dev"),
            "missing_table": dynamodb_table_check("nope"),
            "queue": sqs_queue_check(queue_url),
            "bucket": s3_bucket_check("data"),
            "missing_bucket": s3_bucket_check("absent"),
        },
    )
    assert status.checks == {
        "table": True,
        "missing_table": False,
        "queue": True,
        "bucket": True,
        "missing_bucket": False,
    }
    assert status.details["queue"] == "1 messages waiting"
    assert "ResourceNotFoundException" in status.details["missing_table"]

    record_health(status, "tradai-health-state-dev")
    item = (
        boto3.resource("dynamodb")
        .Table("tradai-health-state-dev")
        .get_item(Key={"service": "health-check"})["Item"]
    )
    assert HealthStatus.from_dict(item) == status
