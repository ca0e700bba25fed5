"""Canonical configuration for every TradAI Pulumi stack.

This module is the single source of truth for names, sizes and per-environment
differences. Stacks import values from here instead of repeating them; per-stack
``Pulumi.<env>.yaml`` files only carry values that are genuinely deployment-specific
(region, optional certificate, alert e-mails, thresholds, schedules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

# ---------------------------------------------------------------------------
# Core configuration
# ---------------------------------------------------------------------------

PROJECT_NAME = "tradai"
ENVIRONMENT = pulumi.get_stack()  # dev, staging, prod
AWS_REGION = "eu-central-1"
ENVIRONMENTS = ("dev", "staging", "prod")

#: The four Pulumi projects, in deployment order.
STACKS = ("persistent", "foundation", "compute", "edge")

# ---------------------------------------------------------------------------
# Networking: one VPC, 2 AZs x 3 tiers = 6 subnets
# ---------------------------------------------------------------------------

VPC_CIDR = "10.0.0.0/16"
AVAILABILITY_ZONES = (f"{AWS_REGION}a", f"{AWS_REGION}b")
SUBNET_TIERS = ("public", "private", "database")
SUBNET_CIDRS = {
    "public": ("10.0.0.0/24", "10.0.1.0/24"),
    "private": ("10.0.10.0/24", "10.0.11.0/24"),
    "database": ("10.0.20.0/24", "10.0.21.0/24"),
}

# ---------------------------------------------------------------------------
# Services (container images built from services/<name>/Dockerfile)
# ---------------------------------------------------------------------------

SERVICES: dict[str, dict[str, Any]] = {
    "backend": {
        "port": 8000,
        "cpu": 256,
        "memory": 512,
        "service_name": "backend-api",
        "path": "/api",
        "health_path": "/api/health",
        "tables": ["workflow_state", "backtest_jobs", "strategies", "trading_state", "health_state"],
        "buckets": ["configs", "results"],
    },
    "strategy-service": {
        "port": 8003,
        "cpu": 256,
        "memory": 512,
        "service_name": "strategy-service",
        "path": "/strategy",
        "health_path": "/strategy/health",
        "tables": ["backtest_jobs", "strategies", "trading_state", "heartbeats"],
        "buckets": ["configs", "results", "arcticdb", "mlflow"],
    },
    "data-collection": {
        "port": 8002,
        "cpu": 256,
        "memory": 512,
        "service_name": "data-collection",
        "path": "/data",
        "health_path": "/data/health",
        "tables": ["data_freshness"],
        "buckets": ["arcticdb"],
    },
    "mlflow": {
        "port": 5000,
        "cpu": 256,
        "memory": 512,
        "service_name": "mlflow",
        "path": "/mlflow",
        "health_path": "/mlflow/health",
        "tables": [],
        "buckets": ["mlflow"],
    },
}

#: Trading services run the strategy-service image as long-lived ECS services.
TRADING_SERVICES: dict[str, dict[str, Any]] = {
    "dry-run-trading": {
        "image": "strategy-service",
        "cpu": 512,
        "memory": 1024,
        "tables": ["trading_state", "heartbeats", "killswitch", "strategies"],
        "buckets": ["configs", "arcticdb", "mlflow"],
    },
    "live-trading": {
        "image": "strategy-service",
        "cpu": 512,
        "memory": 1024,
        "tables": ["trading_state", "heartbeats", "killswitch", "strategies"],
        "buckets": ["configs", "arcticdb", "mlflow"],
    },
}

# ---------------------------------------------------------------------------
# Data stores (persistent stack)
# ---------------------------------------------------------------------------

#: Bucket key -> purpose. Physical name: tradai-<key>-<env>-<account id>.
S3_BUCKETS = {
    "configs": "Strategy and service configuration",
    "results": "Backtest results",
    "arcticdb": "ArcticDB market data store",
    "logs": "Access and CloudTrail logs",
    "mlflow": "MLflow artifacts",
}

#: Table key -> base name. Physical name: <base name>-<env> (see get_table_name).
DYNAMODB_TABLES = {
    "workflow_state": "tradai-workflow-state",
    "health_state": "tradai-health-state",
    "trading_state": "tradai-trading-state",
    "backtest_jobs": "tradai-backtest-jobs",
    "strategies": "tradai-strategies",
    "model_registry": "tradai-model-registry",
    "drift_metrics": "tradai-drift-metrics",
    "alerts": "tradai-alerts",
    "heartbeats": "tradai-heartbeats",
    "data_freshness": "tradai-data-freshness",
    "killswitch": "tradai-killswitch",
    "retraining_jobs": "tradai-retraining-jobs",
}

#: Tables whose items expire (cleaned up by DynamoDB TTL and the cleanup-expired Lambda).
DYNAMODB_TTL_TABLES = ("workflow_state", "health_state", "heartbeats", "alerts", "backtest_jobs")

# ---------------------------------------------------------------------------
# Lambdas: one folder lambdas/<name>/Dockerfile per entry (lambdas/base is the shared
# base image, not a function). update-nat-routes is inline Python, deployed by compute.
# ---------------------------------------------------------------------------

LAMBDA_NAMES = (
    "backtest-consumer",
    "drift-monitor",
    "health-check",
    "update-status",
    "sqs-consumer",
    "validate-strategy",
    "retraining-scheduler",
    "backtest-launcher",
    "backtest-results",
    "strategy-registration",
    "model-promoter",
    "alert-notifier",
    "heartbeat-monitor",
    "dlq-redrive",
    "data-freshness-check",
    "cleanup-expired",
    "trading-killswitch",
)
INLINE_LAMBDAS = ("update-nat-routes",)
LAMBDA_BASE_IMAGE = "lambda-base"
LAMBDA_ARCHITECTURE = "x86_64"

#: What each Lambda may touch (least privilege) and how it is triggered.
#: Keys: tables, buckets, queues ("backtest" | "dlq"), topics ("alerts" | "registration"),
#: state_machine (may start the backtest workflow), schedule (config key, default),
#: sqs / sns (event source), secrets (Secrets Manager names relative to tradai/<env>/),
#: timeout, memory.
LAMBDA_SETTINGS: dict[str, dict[str, Any]] = {
    "backtest-consumer": {"tables": ["backtest_jobs", "workflow_state"], "queues": ["backtest"],
                          "sqs": "backtest", "state_machine": True},
    "drift-monitor": {"tables": ["drift_metrics", "strategies"], "buckets": ["mlflow"],
                      "topics": ["alerts"], "schedule": ("drift_monitor_schedule", "rate(1 day)")},
    "health-check": {"tables": ["health_state"], "topics": ["alerts"],
                     "schedule": ("health_check_schedule", "rate(5 minutes)")},
    "update-status": {"tables": ["workflow_state", "backtest_jobs"]},
    "sqs-consumer": {"tables": ["workflow_state"], "queues": ["backtest"]},
    "validate-strategy": {"tables": ["strategies"], "buckets": ["configs"]},
    "retraining-scheduler": {"tables": ["retraining_jobs", "strategies"], "queues": ["backtest"],
                             "schedule": ("retraining_scheduler_schedule", "rate(7 days)")},
    "backtest-launcher": {"tables": ["backtest_jobs", "workflow_state"], "state_machine": True},
    "backtest-results": {"tables": ["backtest_jobs"], "buckets": ["results"], "timeout": 300,
                         "memory": 1024},
    "strategy-registration": {"tables": ["strategies"], "buckets": ["configs"],
                              "sns": "registration"},
    "model-promoter": {"tables": ["model_registry", "strategies"], "buckets": ["mlflow"],
                       "topics": ["alerts"]},
    "alert-notifier": {"tables": ["alerts"], "sns": "alerts", "secrets": ["alert-webhook"]},
    "heartbeat-monitor": {"tables": ["heartbeats", "trading_state"], "topics": ["alerts"],
                          "schedule": ("heartbeat_monitor_schedule", "rate(5 minutes)")},
    "dlq-redrive": {"queues": ["backtest", "dlq"], "schedule": ("dlq_redrive_schedule", "rate(1 hour)")},
    "data-freshness-check": {"tables": ["data_freshness"], "buckets": ["arcticdb"],
                             "topics": ["alerts"],
                             "schedule": ("data_freshness_schedule", "rate(1 hour)")},
    "cleanup-expired": {"tables": list(DYNAMODB_TTL_TABLES), "buckets": ["results"],
                        "schedule": ("cleanup_expired_schedule", "rate(1 day)")},
    "trading-killswitch": {"tables": ["killswitch", "trading_state"], "topics": ["alerts"],
                           "ecs_trading": True},
}

# ---------------------------------------------------------------------------
# ECR: every image the build tool publishes (22 repositories: lambda-base, 17 lambdas,
# 4 services). The guide's "ECR x24" and "12 ECR repositories" predate the current
# lambda set; this list is derived, so it cannot drift.
# ---------------------------------------------------------------------------

ECR_REPOSITORIES: tuple[str, ...] = (
    f"{PROJECT_NAME}/{LAMBDA_BASE_IMAGE}",
    *(f"{PROJECT_NAME}/lambda-{name}" for name in LAMBDA_NAMES),
    *(f"{PROJECT_NAME}/{service}" for service in SERVICES),
)

CODEARTIFACT_REPOSITORY = "tradai-python"
COGNITO_SCOPES = ("read", "write", "admin")


# ---------------------------------------------------------------------------
# Per-environment differences
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentSettings:
    """Everything that differs between dev, staging and prod."""

    multi_az: bool
    rds_instance_class: str
    rds_allocated_storage: int
    rds_backup_retention_days: int
    deletion_protection: bool
    log_retention_days: int
    use_fargate_spot: bool
    live_trading_on_spot: bool
    consolidated_ec2: bool
    consolidated_instance_type: str
    service_desired_count: int
    container_insights: bool

    @property
    def nat_instance_count(self) -> int:
        """One NAT instance per AZ when multi-AZ, a single one otherwise."""
        return len(AVAILABILITY_ZONES) if self.multi_az else 1


ENVIRONMENT_SETTINGS: dict[str, EnvironmentSettings] = {
    "dev": EnvironmentSettings(
        multi_az=False,
        rds_instance_class="db.t4g.micro",
        rds_allocated_storage=20,
        rds_backup_retention_days=1,
        deletion_protection=False,
        log_retention_days=7,
        use_fargate_spot=True,
        live_trading_on_spot=True,
        consolidated_ec2=True,
        consolidated_instance_type="t3.medium",
        service_desired_count=1,
        container_insights=False,
    ),
    "staging": EnvironmentSettings(
        multi_az=False,
        rds_instance_class="db.t4g.small",
        rds_allocated_storage=20,
        rds_backup_retention_days=7,
        deletion_protection=False,
        log_retention_days=30,
        use_fargate_spot=True,
        live_trading_on_spot=False,
        consolidated_ec2=True,
        consolidated_instance_type="t3.large",
        service_desired_count=1,
        container_insights=False,
    ),
    "prod": EnvironmentSettings(
        multi_az=True,
        rds_instance_class="db.t4g.medium",
        rds_allocated_storage=50,
        rds_backup_retention_days=14,
        deletion_protection=True,
        log_retention_days=90,
        use_fargate_spot=True,  # backtests and dry-run only; never live trading
        live_trading_on_spot=False,
        consolidated_ec2=False,
        consolidated_instance_type="t3.large",
        service_desired_count=2,
        container_insights=True,
    ),
}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _env(env: str | None) -> str:
    environment = env or ENVIRONMENT
    if environment not in ENVIRONMENTS:
        raise ValueError(
            f"unknown environment {environment!r}: the stack must be one of {', '.join(ENVIRONMENTS)} "
            "(pulumi stack select dev|staging|prod)"
        )
    return environment


def get_env_settings(env: str | None = None) -> EnvironmentSettings:
    """Settings for the current stack's environment (or ``env``)."""
    return ENVIRONMENT_SETTINGS[_env(env)]


def get_resource_name(name: str, env: str | None = None) -> str:
    """Standard resource name: ``get_resource_name("backend")`` -> ``tradai-backend-dev``."""
    return f"{PROJECT_NAME}-{name}-{_env(env)}"


def get_short_resource_name(name: str, env: str | None = None) -> str:
    """Name for resources with tight length limits (ALB, target groups: 32 characters)."""
    return f"{PROJECT_NAME}-{name}-{get_env_short(env)}"


def get_ecr_repo_name(name: str) -> str:
    """ECR repository name: ``get_ecr_repo_name("backend")`` -> ``tradai/backend``."""
    return f"{PROJECT_NAME}/{name}"


def get_lambda_repo_name(lambda_name: str) -> str:
    """ECR repository of a Lambda image: ``tradai/lambda-<name>``."""
    return get_ecr_repo_name(f"lambda-{lambda_name}")


def get_table_name(key: str, env: str | None = None) -> str:
    """Physical DynamoDB table name for a DYNAMODB_TABLES key."""
    return f"{DYNAMODB_TABLES[key]}-{_env(env)}"


def get_ecs_service_name(service: str, env: str | None = None) -> str:
    """ECS service name; ``backend`` is deployed as ``backend-api``."""
    service_name = SERVICES[service]["service_name"] if service in SERVICES else service
    return get_resource_name(service_name, env)


def get_env_short(env: str | None = None) -> str:
    """Environment short code for name length limits: d, s or p."""
    return {"dev": "d", "staging": "s", "prod": "p"}[_env(env)]


def get_tags(service: str | None = None, env: str | None = None, **extra: str) -> dict[str, str]:
    """Standard tags applied to every taggable resource."""
    tags = {
        "Project": PROJECT_NAME,
        "Environment": _env(env),
        "ManagedBy": "pulumi",
    }
    if service:
        tags["Service"] = service
    tags.update(extra)
    return tags


def get_secret_name(name: str, env: str | None = None) -> str:
    """Secrets Manager name for an operator-managed secret: ``tradai/<env>/<name>``."""
    return f"{PROJECT_NAME}/{_env(env)}/{name}"


def get_stack_project_name(stack: str) -> str:
    """Pulumi project name of a stack: ``tradai-<stack>``."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}: expected one of {', '.join(STACKS)}")
    return f"{PROJECT_NAME}-{stack}"


def check_environment_config() -> None:
    """Fail fast when ``<project>:environment`` disagrees with the selected stack."""
    configured = pulumi.Config().get("environment")
    if configured is not None and configured != _env(None):
        raise ValueError(
            f"{pulumi.get_project()}:environment is {configured!r} but the selected stack is "
            f"{ENVIRONMENT!r}; fix Pulumi.{ENVIRONMENT}.yaml"
        )
