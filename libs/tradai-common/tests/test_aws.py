import json

import boto3
from moto import mock_aws

import tradai_common.aws as aws
from tradai_common.settings import Settings


def test_client_uses_settings_region():
    settings = Settings.from_env({"AWS_REGION": "us-west-2"})
    sqs = aws.client("sqs", settings)
    assert sqs.meta.region_name == "us-west-2"
    assert "amazonaws.com" in sqs.meta.endpoint_url


def test_endpoint_url_is_honoured(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    ddb = aws.client("dynamodb")
    assert ddb.meta.endpoint_url == "http://localhost:4566"
    table = aws.resource("dynamodb")
    assert table.meta.client.meta.endpoint_url == "http://localhost:4566"


def test_overrides_take_precedence():
    sqs = aws.client("sqs", Settings.from_env({}), region_name="ap-south-1")
    assert sqs.meta.region_name == "ap-south-1"


@mock_aws
def test_factory_clients_talk_to_aws_api():
    aws.client("s3").create_bucket(
        Bucket="tradai-results-dev",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    names = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert names == ["tradai-results-dev"]


@mock_aws
def test_publish_alert_prefixes_subject_and_skips_without_topic(monkeypatch):
    assert aws.publish_alert("ignored", {"a": 1}) is None
    sns = boto3.client("sns")
    sqs = boto3.client("sqs")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    assert aws.publish_alert("disk " + "full " * 40, {"used": 0.99})
    body = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert body["Subject"].startswith("[tradai dev] disk full")
    assert len(body["Subject"]) == 100
    assert json.loads(body["Message"]) == {"used": 0.99}
