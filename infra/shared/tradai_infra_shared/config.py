"""Canonical configuration for every TradAI Pulumi stack.

This module is the single source of truth for names, sizes and per-environment
differences. Stacks import values from here instead of repeating them; per-stack
``Pulumi.<env>.yaml`` files only carry values that are genuinely deployment-specific
(region, optional certificate, alert e-mails, thresholds, schedules).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

#: The facts `cargo xtask` reads too (project name, environments, trading services,
#: which environments run the API on the consolidated EC2 host): one file, two readers.
DEPLOYMENT = tomllib.loads((Path(__file__).parent / "deployment.toml").read_text(encoding="utf-8"))

# ---------------------------------------------------------------------------
# Core configuration
# ---------------------------------------------------------------------------

PROJECT_NAME: str = DEPLOYMENT["project"]
ENVIRONMENT = pulumi.get_stack()  # dev, staging, prod
AWS_REGION = "eu-central-1"
ENVIRONMENTS: tuple[str, ...] = tuple(DEPLOYMENT["environments"])

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

#: ``path`` is the ALB/API route prefix (stripped by the ALB before the request reaches the
#: container, which serves at its root); ``health_path`` is what the target group probes.
#: ``tables``/``buckets``/``queues``/``topics`` are what the service's task role may use.
SERVICES: dict[str, dict[str, Any]] = {
    "backend": {
        "port": 8000,
        "cpu": 256,
        "memory": 512,
        "service_name": "backend-api",
        "path": "/api",
        "health_path": "/health",
        "tables": ["workflow_state", "health_state", "trading_state"],
        "buckets": {"results": "read"},
        "queues": {"backtest": "send"},
        "topics": [],
        "state_machine": True,
    },
    "strategy-service": {
        "port": 8003,
        "cpu": 256,
        "memory": 512,
        "service_name": "strategy-service",
        "path": "/strategy",
        "health_path": "/health",
        "tables": ["workflow_state", "health_state", "trading_state"],
        "buckets": {"configs": "read", "results": "write", "arcticdb": "read", "mlflow": "write"},
        "queues": {"status": "send"},
        "topics": [],
    },
    "data-collection": {
        "port": 8002,
        "cpu": 256,
        "memory": 512,
        "service_name": "data-collection",
        "path": "/data",
        "health_path": "/health",
        "tables": ["health_state"],
        "buckets": {"arcticdb": "write"},
        "queues": {},
        "topics": [],
    },
    "mlflow": {
        "port": 5000,
        "cpu": 256,
        "memory": 512,
        "service_name": "mlflow",
        "path": "/mlflow",
        "health_path": "/health",
        "tables": [],
        "buckets": {"mlflow": "write"},
        "queues": {},
        "topics": [],
        "database": True,
    },
}

#: Trading services run the strategy-service image as long-lived ECS services in every
#: environment; live trading never runs on FARGATE_SPOT in prod (EnvironmentSettings).
TRADING_SERVICES: dict[str, dict[str, Any]] = {
    name: {
        "image": "strategy-service",
        "cpu": 512,
        "memory": 1024,
        "tables": ["trading_state", "health_state"],
        "buckets": {"configs": "read", "arcticdb": "read", "mlflow": "read"},
        "queues": {},
        "topics": ["alerts"],
        "mode": mode,
    }
    for name, mode in DEPLOYMENT["trading-services"].items()
}

#: Backtests run as one-off ECS tasks of the strategy-service image, started by the
#: backtest-consumer Lambda (``BACKTEST_TASK_DEFINITION``), always on FARGATE_SPOT when
#: the environment allows Spot.
BACKTEST_TASK: dict[str, Any] = {
    "image": "strategy-service",
    "cpu": 1024,
    "memory": 2048,
    "tables": ["workflow_state"],
    "buckets": {"configs": "read", "results": "write", "arcticdb": "read", "mlflow": "write"},
    "queues": {"status": "send"},
    "topics": [],
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

#: What each Lambda may touch (least privilege), how it is triggered and its sizing.
#: tables: DYNAMODB_TABLES keys (read/write); buckets: key -> "read" | "write";
#: queues: key -> "send" | "consume" | "redrive" (keys: backtest, status, dlq);
#: topics: SNS topics it publishes to; trigger: ("schedule", config key, default) |
#: ("sqs", queue key) | ("s3", bucket key, key prefix) | ("alarms",) | None (invoked by
#: the API, Step Functions or an operator); ecs: "run-backtest" | "trading-services".
LAMBDA_SETTINGS: dict[str, dict[str, Any]] = {
    "backtest-consumer": {
        "tables": ["workflow_state"],
        "queues": {"backtest": "consume"},
        "trigger": ("sqs", "backtest"),
        "ecs": "run-backtest",
    },
    "drift-monitor": {
        "tables": ["trading_state"],
        "topics": ["alerts"],
        "trigger": ("schedule", "drift_monitor_schedule", "rate(1 day)"),
    },
    "health-check": {
        "tables": ["workflow_state", "health_state", "trading_state"],
        "buckets": {"results": "read"},
        "queues": {"backtest": "inspect"},
        "topics": ["alerts"],
        "trigger": ("schedule", "health_check_schedule", "rate(5 minutes)"),
    },
    "update-status": {"tables": ["workflow_state"]},
    "sqs-consumer": {"tables": ["workflow_state"], "queues": {"status": "consume"}, "trigger": ("sqs", "status")},
    "validate-strategy": {"tables": ["trading_state"]},
    "retraining-scheduler": {
        "tables": ["trading_state", "workflow_state"],
        "queues": {"backtest": "send"},
        "trigger": ("schedule", "retraining_scheduler_schedule", "rate(7 days)"),
    },
    "backtest-launcher": {"tables": ["workflow_state"], "queues": {"backtest": "send"}},
    "backtest-results": {
        "tables": ["workflow_state"],
        "buckets": {"results": "read"},
        "trigger": ("s3", "results", "results/"),
        "timeout": 120,
        "memory": 512,
    },
    "strategy-registration": {"tables": ["trading_state"], "topics": ["registration"]},
    "model-promoter": {"tables": ["trading_state"]},
    "alert-notifier": {"topics": ["alerts"], "trigger": ("alarms",)},
    "heartbeat-monitor": {
        "tables": ["health_state"],
        "topics": ["alerts"],
        "trigger": ("schedule", "heartbeat_monitor_schedule", "rate(5 minutes)"),
    },
    "dlq-redrive": {"queues": {"dlq": "redrive", "backtest": "send"}, "timeout": 300},
    "data-freshness-check": {
        "buckets": {"arcticdb": "read"},
        "topics": ["alerts"],
        "trigger": ("schedule", "data_freshness_schedule", "rate(1 hour)"),
    },
    "cleanup-expired": {
        "tables": ["workflow_state", "health_state"],
        "buckets": {"results": "write"},
        "trigger": ("schedule", "cleanup_expired_schedule", "rate(1 day)"),
        "timeout": 300,
    },
    "trading-killswitch": {"tables": ["trading_state"], "topics": ["alerts"], "ecs": "trading-services"},
}

#: Environment variable names the TradAI code reads (tradai_common.settings.Settings).
TABLE_ENV_VARS = {"workflow_state": "WORKFLOW_TABLE", "health_state": "HEALTH_TABLE", "trading_state": "TRADING_TABLE"}
BUCKET_ENV_VARS = {
    "results": "RESULTS_BUCKET",
    "arcticdb": "DATA_BUCKET",
    "configs": "CONFIGS_BUCKET",
    "mlflow": "MLFLOW_BUCKET",
    "logs": "LOGS_BUCKET",
}
QUEUE_ENV_VARS = {"backtest": "BACKTEST_QUEUE_URL", "dlq": "BACKTEST_DLQ_URL", "status": "STATUS_QUEUE_URL"}
TOPIC_ENV_VARS = {"alerts": "ALERTS_TOPIC_ARN", "registration": "REGISTRATION_TOPIC_ARN"}


def table_env_var(key: str) -> str:
    return TABLE_ENV_VARS.get(key, f"{key.upper()}_TABLE")


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
        consolidated_ec2=DEPLOYMENT["consolidated-ec2"]["dev"],
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
        consolidated_ec2=DEPLOYMENT["consolidated-ec2"]["staging"],
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
        consolidated_ec2=DEPLOYMENT["consolidated-ec2"]["prod"],
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
