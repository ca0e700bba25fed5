import json

import boto3
import pytest

from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.state import StateConflictError, WorkflowStore

BUCKET = "tradai-results-dev"


def s3_event(*keys):
    return {
        "Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}} for key in keys]
    }


@pytest.fixture
def s3(tables):
    client = boto3.client("s3")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return client


@pytest.fixture
def store(tables, job_data):
    store = WorkflowStore.from_settings()
    store.put(BacktestJob.from_dict(job_data), WorkflowState.RUNNING)
    store.put(BacktestJob.from_dict({**job_data, "job_id": "job-2"}), WorkflowState.RUNNING)
    return store


def test_results_and_errors_are_recorded(handler, context, s3, store):
    s3.put_object(Bucket=BUCKET, Key="results/job-1.json", Body=json.dumps({"sharpe": 1.2}))
    s3.put_object(Bucket=BUCKET, Key="results/job-2.json", Body=json.dumps({"error": "no data"}))
    s3.put_object(Bucket=BUCKET, Key="logs/job-1.txt", Body=b"log")
    result = handler.lambda_handler(
        s3_event("results/job-1.json", "results/job-2.json", "logs/job-1.txt"), context
    )
    assert result == {"recorded": {"job-1": "COMPLETED", "job-2": "FAILED"}}
    assert store.require("job-1").result == {"sharpe": 1.2}
    assert store.require("job-2").error == "no data"


def test_result_for_finished_job_conflicts(handler, context, s3, store):
    store.update_status("job-1", WorkflowState.CANCELLED)
    s3.put_object(Bucket=BUCKET, Key="results/job-1.json", Body=b"{}")
    with pytest.raises(StateConflictError):
        handler.lambda_handler(s3_event("results/job-1.json"), context)
