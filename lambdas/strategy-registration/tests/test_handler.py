import json

import pytest


@pytest.fixture
def topic(make_topic):
    return make_topic("tradai-registration-dev", "REGISTRATION_TOPIC_ARN")


def test_registers_version_and_pointer(handler, context, tables, topic):
    event = {"name": "ma-crossover", "version": "1.0.0", "parameters": {"fast": 5, "slow": 20.5}}
    assert handler.lambda_handler(event, context)["registered"] is True
    version = tables.trading.get_item(Key={"pk": "strategy#ma-crossover#1.0.0"})["Item"]
    assert version["stage"] == "registered"
    assert float(version["parameters"]["slow"]) == 20.5
    pointer = tables.trading.get_item(Key={"pk": "strategy#ma-crossover"})["Item"]
    assert pointer["latest_version"] == "1.0.0"
    [message] = topic.messages()
    assert message["Subject"] == "Strategy registered: ma-crossover 1.0.0"
    assert json.loads(message["Message"])["version"] == "1.0.0"


def test_same_version_cannot_be_registered_twice(handler, context, tables):
    event = {"name": "ma-crossover", "version": "1.0.0"}
    handler.lambda_handler(event, context)
    again = handler.lambda_handler({**event, "parameters": {"fast": 1}}, context)
    assert again == {"registered": False, "error": "ma-crossover 1.0.0 is already registered"}
    handler.lambda_handler({**event, "version": "1.1.0"}, context)
    pointer = tables.trading.get_item(Key={"pk": "strategy#ma-crossover"})["Item"]
    assert pointer["latest_version"] == "1.1.0"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"name": "MA", "version": "1.0.0"}, "invalid strategy name"),
        ({"name": "ma", "version": "v1"}, "MAJOR.MINOR.PATCH"),
        ({"name": "ma", "version": "1.0.0", "parameters": [1]}, "parameters must be an object"),
    ],
)
def test_invalid_events(handler, context, event, message):
    result = handler.lambda_handler(event, context)
    assert result["registered"] is False
    assert message in result["error"]
