import boto3
import pytest

from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.state import WorkflowStore


@pytest.fixture
def cluster(tables, monkeypatch):
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="tradai-dev")
    # moto cannot attach awsvpc network interfaces; bridge mode keeps RunTask testable.
    ecs.register_task_definition(
        family="tradai-backtest-dev",
        networkMode="bridge",
        containerDefinitions=[{"name": "backtest", "image": "tradai/backtest", "memory": 512}],
    )
    monkeypatch.setenv("ECS_CLUSTER", "tradai-dev")
    monkeypatch.setenv("BACKTEST_TASK_DEFINITION", "tradai-backtest-dev")
    return ecs


def queued(job_data):
    store = WorkflowStore.from_settings()
    job = BacktestJob.from_dict(job_data)
    store.put(job, WorkflowState.QUEUED)
    return store


def test_starts_task_and_marks_running(handler, context, cluster, job_data, make_sqs_event):
    store = queued(job_data)
    result = handler.lambda_handler(make_sqs_event(job_data), context)
    assert result == {"batchItemFailures": []}
    assert store.require("job-1").state is WorkflowState.RUNNING
    tasks = cluster.list_tasks(cluster="tradai-dev")["taskArns"]
    described = cluster.describe_tasks(cluster="tradai-dev", tasks=tasks)["tasks"]
    env = described[0]["overrides"]["containerOverrides"][0]["environment"]
    assert env == [{"name": "JOB_ID", "value": "job-1"}]


def test_malformed_and_unknown_jobs_are_reported(
    handler, context, cluster, job_data, make_sqs_event
):
    event = make_sqs_event("not json", {**job_data, "job_id": "never-recorded"})
    result = handler.lambda_handler(event, context)
    assert result == {
        "batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]
    }


def test_cancelled_job_is_skipped(handler, context, cluster, job_data, make_sqs_event):
    store = queued(job_data)
    store.update_status("job-1", WorkflowState.CANCELLED)
    assert handler.lambda_handler(make_sqs_event(job_data), context)["batchItemFailures"] == []
    assert cluster.list_tasks(cluster="tradai-dev")["taskArns"] == []


def test_task_start_failure_marks_job_failed(
    handler, context, cluster, job_data, make_sqs_event, monkeypatch
):
    monkeypatch.setenv("BACKTEST_TASK_DEFINITION", "does-not-exist")
    store = queued(job_data)
    handler.lambda_handler(make_sqs_event(job_data), context)
    record = store.require("job-1")
    assert record.state is WorkflowState.FAILED
    assert record.error
