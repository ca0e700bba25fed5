"""Health checks for services (``GET /health``) and the health Lambda functions.

A check is a zero-argument callable returning ``True``/``False`` or
``(ok, detail)``. :func:`run_checks` runs them all, never lets one exception stop
the others, and returns a :class:`~tradai_common.models.HealthStatus`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import tradai_common.aws as aws
from tradai_common.models import HealthStatus
from tradai_common.state import to_dynamo

CheckResult = bool | tuple[bool, str]
Check = Callable[[], CheckResult]


def run_checks(service: str, checks: Mapping[str, Check]) -> HealthStatus:
    """Run every check; the service is healthy when all of them pass."""
    results: dict[str, bool] = {}
    details: dict[str, str] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            outcome = check()
        except Exception as exc:
            results[name] = False
            details[name] = f"{type(exc).__name__}: {exc}"
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        if isinstance(outcome, tuple):
            ok, detail = outcome
            results[name] = bool(ok)
            details[name] = detail
        else:
            results[name] = bool(outcome)
            details[name] = f"{elapsed_ms:.1f} ms"
    return HealthStatus(
        service=service, healthy=all(results.values()), checks=results, details=details
    )


def dynamodb_table_check(table_name: str, client: Any | None = None) -> Check:
    """Passes when the table exists and is ACTIVE."""

    def check() -> CheckResult:
        ddb = client or aws.client("dynamodb")
        status = ddb.describe_table(TableName=table_name)["Table"]["TableStatus"]
        return status == "ACTIVE", f"{table_name} is {status}"

    return check


def sqs_queue_check(queue_url: str, client: Any | None = None) -> Check:
    """Passes when the queue answers; reports its approximate depth."""

    def check() -> CheckResult:
        sqs = client or aws.client("sqs")
        attrs = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return True, f"{attrs.get('ApproximateNumberOfMessages', '0')} messages waiting"

    return check


def s3_bucket_check(bucket: str, client: Any | None = None) -> Check:
    """Passes when the bucket exists and is reachable."""

    def check() -> CheckResult:
        s3 = client or aws.client("s3")
        s3.head_bucket(Bucket=bucket)
        return True, f"bucket {bucket} reachable"

    return check


def record_health(status: HealthStatus, table_name: str, dynamodb: Any | None = None) -> None:
    """Store the latest status of a service in the health-state table (key ``service``)."""
    resource = dynamodb or aws.resource("dynamodb")
    resource.Table(table_name).put_item(Item=to_dynamo(status.to_dict()))
