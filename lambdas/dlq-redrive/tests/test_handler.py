import boto3
import pytest


@pytest.fixture
def queues(aws, backtest_queue, monkeypatch):
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="tradai-backtest-dlq-dev")["QueueUrl"]
    monkeypatch.setenv("BACKTEST_DLQ_URL", dlq)
    for i in range(23):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=f'{{"n": {i}}}',
            MessageAttributes={"strategy": {"DataType": "String", "StringValue": "ma-crossover"}},
        )
    return sqs, backtest_queue, dlq


def depth(sqs, url):
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_moves_everything_with_attributes(handler, context, queues):
    sqs, queue, dlq = queues
    assert handler.lambda_handler({}, context)["redriven"] == 23
    assert depth(sqs, dlq) == 0
    assert depth(sqs, queue) == 23
    message = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"][0]
    assert message["MessageAttributes"]["strategy"]["StringValue"] == "ma-crossover"


def test_respects_limit(handler, context, queues):
    sqs, queue, dlq = queues
    assert handler.lambda_handler({"max_messages": 12}, context)["redriven"] == 12
    assert depth(sqs, queue) == 12
    assert depth(sqs, dlq) == 11


def test_dry_run_moves_nothing(handler, context, queues):
    sqs, queue, _ = queues
    result = handler.lambda_handler({"dry_run": True, "max_messages": 5}, context)
    assert result == {"redriven": 0, "seen": 5, "dry_run": True}
    assert depth(sqs, queue) == 0


def test_bad_limit_and_missing_config(handler, context, queues, monkeypatch):
    with pytest.raises(ValueError, match="max_messages"):
        handler.lambda_handler({"max_messages": 0}, context)
    monkeypatch.delenv("BACKTEST_DLQ_URL")
    with pytest.raises(ValueError, match="backtest_dlq_url"):
        handler.lambda_handler({}, context)
