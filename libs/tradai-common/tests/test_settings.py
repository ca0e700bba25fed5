import dataclasses

import pytest

from tradai_common.settings import Settings


def test_defaults_follow_naming_scheme():
    settings = Settings.from_env({})
    assert settings.environment == "dev"
    assert settings.region == "eu-central-1"
    assert settings.workflow_table == "tradai-workflow-state-dev"
    assert settings.health_table == "tradai-health-state-dev"
    assert settings.backtest_queue_url is None
    assert settings.resource_name("backend") == "tradai-backend-dev"


def test_environment_drives_table_names_and_overrides_win():
    settings = Settings.from_env(
        {
            "TRADAI_ENV": "PROD",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "HEALTH_TABLE": "custom-health",
            "BACKTEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
            "AWS_ENDPOINT_URL": "http://localhost:5000",
            "LOG_LEVEL": "debug",
            "RETENTION_DAYS": "7",
            "BACKTEST_SUBNETS": "subnet-a, subnet-b,",
        }
    )
    assert settings.environment == "prod"
    assert settings.region == "us-east-1"
    assert settings.workflow_table == "tradai-workflow-state-prod"
    assert settings.health_table == "custom-health"
    assert settings.endpoint_url == "http://localhost:5000"
    assert settings.log_level == "DEBUG"
    assert settings.retention_days == 7
    assert settings.backtest_subnets == ("subnet-a", "subnet-b")
    assert settings.backtest_security_groups == ()


def test_reads_process_environment(monkeypatch):
    monkeypatch.setenv("TRADAI_ENV", "staging")
    monkeypatch.setenv("RESULTS_BUCKET", "results")
    settings = Settings.from_env()
    assert settings.environment == "staging"
    assert settings.results_bucket == "results"
    assert settings.to_dict()["results_bucket"] == "results"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRADAI_ENV": "qa"}, "environment must be one of"),
        ({"LOG_LEVEL": "chatty"}, "log_level"),
        ({"RETENTION_DAYS": "soon"}, "RETENTION_DAYS must be an integer"),
        ({"RETENTION_DAYS": "0"}, "RETENTION_DAYS must be positive"),
    ],
)
def test_invalid_values_raise(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.environment = "prod"  # type: ignore[misc]


def test_require_reports_missing_setting():
    settings = Settings.from_env({"DATA_BUCKET": "data"})
    assert settings.require("data_bucket") == "data"
    with pytest.raises(ValueError, match="'alerts_topic_arn' is required"):
        settings.require("alerts_topic_arn")
