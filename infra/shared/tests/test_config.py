"""The canonical configuration: names, helpers and per-environment differences."""

from __future__ import annotations

import re

import pytest

from tradai_infra_shared import config
from tradai_infra_shared.config import (
    DYNAMODB_TABLES,
    ECR_REPOSITORIES,
    ENVIRONMENT_SETTINGS,
    LAMBDA_NAMES,
    LAMBDA_SETTINGS,
    S3_BUCKETS,
    SERVICES,
    get_ecr_repo_name,
    get_ecs_service_name,
    get_env_settings,
    get_env_short,
    get_resource_name,
    get_tags,
)
from tradai_infra_shared.testing import REPO_ROOT


def test_core_values_match_the_guide() -> None:
    assert config.PROJECT_NAME == "tradai"
    assert config.AWS_REGION == "eu-central-1"
    assert config.VPC_CIDR == "10.0.0.0/16"
    assert config.ENVIRONMENT == "dev"  # the stack the in-process mocks run as


def test_services_table() -> None:
    assert {name: (s["port"], s["cpu"], s["memory"]) for name, s in SERVICES.items()} == {
        "backend": (8000, 256, 512),
        "strategy-service": (8003, 256, 512),
        "data-collection": (8002, 256, 512),
        "mlflow": (5000, 256, 512),
    }
    assert {s["path"] for s in SERVICES.values()} == {"/api", "/data", "/strategy", "/mlflow"}


def test_resource_naming_helpers() -> None:
    assert get_resource_name("backend") == "tradai-backend-dev"
    assert get_resource_name("backend", "prod") == "tradai-backend-prod"
    assert get_ecr_repo_name("backend") == "tradai/backend"
    assert get_ecs_service_name("backend", "staging") == "tradai-backend-api-staging"
    assert get_ecs_service_name("live-trading", "prod") == "tradai-live-trading-prod"
    assert [get_env_short(e) for e in ("dev", "staging", "prod")] == ["d", "s", "p"]
    with pytest.raises(ValueError, match="dev, staging, prod"):
        get_resource_name("backend", "qa")


def test_tags() -> None:
    assert get_tags(service="backend") == {
        "Project": "tradai",
        "Environment": "dev",
        "Service": "backend",
        "ManagedBy": "pulumi",
    }
    assert "Service" not in get_tags()


def test_seventeen_lambdas_each_with_settings() -> None:
    assert len(LAMBDA_NAMES) == 17 == len(set(LAMBDA_NAMES))
    assert set(LAMBDA_SETTINGS) == set(LAMBDA_NAMES)
    assert "base" not in LAMBDA_NAMES and "update-nat-routes" not in LAMBDA_NAMES


def test_lambda_names_match_lambda_folders() -> None:
    lambdas_dir = REPO_ROOT / "lambdas"
    if not lambdas_dir.is_dir():
        pytest.skip("lambdas/ does not exist in this checkout")
    folders = {p.parent.name for p in lambdas_dir.glob("*/Dockerfile")} - {"base"}
    assert folders - set(LAMBDA_NAMES) == set(), "Lambda folders without an entry in config.LAMBDA_NAMES"
    assert set(LAMBDA_NAMES) - folders == set(), "config.LAMBDA_NAMES entries without a lambdas/<name>/Dockerfile"


def test_ecr_repositories_cover_every_published_image() -> None:
    assert len(ECR_REPOSITORIES) == 22 == len(set(ECR_REPOSITORIES))
    assert "tradai/lambda-base" in ECR_REPOSITORIES
    assert {f"tradai/lambda-{n}" for n in LAMBDA_NAMES} <= set(ECR_REPOSITORIES)
    assert {"tradai/backend", "tradai/data-collection", "tradai/strategy-service", "tradai/mlflow"} <= set(
        ECR_REPOSITORIES
    )
    assert all(re.fullmatch(r"tradai/[a-z0-9-]+", repo) for repo in ECR_REPOSITORIES)


def test_data_store_inventory() -> None:
    assert set(S3_BUCKETS) == {"configs", "results", "arcticdb", "logs", "mlflow"}
    assert len(DYNAMODB_TABLES) == 12
    assert {"workflow_state", "health_state", "trading_state"} <= set(DYNAMODB_TABLES)
    assert config.get_table_name("workflow_state", "prod") == "tradai-workflow-state-prod"


def test_environment_differences() -> None:
    dev, staging, prod = (ENVIRONMENT_SETTINGS[e] for e in ("dev", "staging", "prod"))
    # dev: single-AZ, t4g.micro RDS, FARGATE_SPOT, 7-day logs
    assert (dev.multi_az, dev.rds_instance_class, dev.use_fargate_spot, dev.log_retention_days) == (
        False,
        "db.t4g.micro",
        True,
        7,
    )
    # staging: production-like but single-AZ, t4g.small RDS
    assert (staging.multi_az, staging.rds_instance_class) == (False, "db.t4g.small")
    # prod: multi-AZ, full redundancy, 90-day logs, no Spot for live trading
    assert prod.multi_az, "prod must be multi-AZ"
    assert prod.nat_instance_count == 2 and prod.service_desired_count >= 2
    assert prod.log_retention_days == 90
    assert prod.live_trading_on_spot is False
    assert prod.deletion_protection and not prod.consolidated_ec2
    assert dev.consolidated_ec2 and staging.consolidated_ec2


def test_env_settings_follow_the_stack() -> None:
    assert get_env_settings() is ENVIRONMENT_SETTINGS["dev"]
