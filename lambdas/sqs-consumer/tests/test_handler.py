from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.state import WorkflowStore


def test_applies_updates_and_reports_bad_messages(
    handler, context, tables, job_data, make_sqs_event
):
    store = WorkflowStore.from_settings()
    store.put(BacktestJob.from_dict(job_data), WorkflowState.RUNNING)
    event = make_sqs_event(
        {"job_id": "job-1", "state": "COMPLETED", "result": {"sharpe": 1.5}},
        "{broken",
        {"job_id": "ghost", "state": "FAILED"},
        {"job_id": "job-1", "state": "EXPLODED"},
        {"state": "FAILED"},
    )
    result = handler.lambda_handler(event, context)
    assert result["batchItemFailures"] == [
        {"itemIdentifier": "msg-1"},
        {"itemIdentifier": "msg-2"},
        {"itemIdentifier": "msg-3"},
        {"itemIdentifier": "msg-4"},
    ]
    record = store.require("job-1")
    assert record.state is WorkflowState.COMPLETED
    assert record.result == {"sharpe": 1.5}


def test_stale_update_is_dropped_not_retried(handler, context, tables, job_data, make_sqs_event):
    store = WorkflowStore.from_settings()
    store.put(BacktestJob.from_dict(job_data), WorkflowState.RUNNING)
    store.update_status("job-1", WorkflowState.CANCELLED)
    result = handler.lambda_handler(
        make_sqs_event({"job_id": "job-1", "state": "COMPLETED"}), context
    )
    assert result == {"batchItemFailures": []}
    assert store.require("job-1").state is WorkflowState.CANCELLED


def test_empty_event(handler, context, tables):
    assert handler.lambda_handler({}, context) == {"batchItemFailures": []}
