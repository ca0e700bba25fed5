"""Runtime settings read from the environment.

Every TradAI process (service container, Lambda function, CLI) reads the same
variables. Resource names follow the infrastructure naming scheme
``{project}-{name}-{environment}`` (``tradai-workflow-state-dev``) unless an explicit
variable overrides them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ENVIRONMENTS = ("dev", "staging", "prod")
DEFAULT_REGION = "eu-central-1"
PROJECT_NAME = "tradai"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _resource_name(name: str, environment: str) -> str:
    return f"{PROJECT_NAME}-{name}-{environment}"


def _optional(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key, "").strip()
    return value or None


def _csv(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(key, "").split(",") if part.strip())


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{key} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Immutable process settings. Build it with :meth:`from_env`."""

    environment: str = "dev"
    region: str = DEFAULT_REGION
    service_name: str = "tradai"
    log_level: str = "INFO"
    workflow_table: str = _resource_name("workflow-state", "dev")
    health_table: str = _resource_name("health-state", "dev")
    trading_table: str = _resource_name("trading-state", "dev")
    backtest_queue_url: str | None = None
    backtest_dlq_url: str | None = None
    alerts_topic_arn: str | None = None
    registration_topic_arn: str | None = None
    results_bucket: str | None = None
    data_bucket: str | None = None
    ecs_cluster: str | None = None
    backtest_task_definition: str | None = None
    backtest_subnets: tuple[str, ...] = ()
    backtest_security_groups: tuple[str, ...] = ()
    endpoint_url: str | None = None
    retention_days: int = 30

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise ValueError(
                f"environment must be one of {', '.join(ENVIRONMENTS)}; got {self.environment!r}"
            )
        if self.log_level not in LOG_LEVELS:
            raise ValueError(
                f"log_level must be one of {', '.join(LOG_LEVELS)}; got {self.log_level!r}"
            )
        if not self.region:
            raise ValueError("region must not be empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: ``os.environ``).

        Raises ``ValueError`` naming the offending variable when a value is invalid.
        """
        env = os.environ if environ is None else environ
        environment = env.get("TRADAI_ENV", "dev").strip().lower() or "dev"
        region = (
            _optional(env, "AWS_REGION") or _optional(env, "AWS_DEFAULT_REGION") or DEFAULT_REGION
        )
        return cls(
            environment=environment,
            region=region,
            service_name=_optional(env, "TRADAI_SERVICE") or "tradai",
            log_level=(env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"),
            workflow_table=_optional(env, "WORKFLOW_TABLE")
            or _resource_name("workflow-state", environment),
            health_table=_optional(env, "HEALTH_TABLE")
            or _resource_name("health-state", environment),
            trading_table=_optional(env, "TRADING_TABLE")
            or _resource_name("trading-state", environment),
            backtest_queue_url=_optional(env, "BACKTEST_QUEUE_URL"),
            backtest_dlq_url=_optional(env, "BACKTEST_DLQ_URL"),
            alerts_topic_arn=_optional(env, "ALERTS_TOPIC_ARN"),
            registration_topic_arn=_optional(env, "REGISTRATION_TOPIC_ARN"),
            results_bucket=_optional(env, "RESULTS_BUCKET"),
            data_bucket=_optional(env, "DATA_BUCKET"),
            ecs_cluster=_optional(env, "ECS_CLUSTER"),
            backtest_task_definition=_optional(env, "BACKTEST_TASK_DEFINITION"),
            backtest_subnets=_csv(env, "BACKTEST_SUBNETS"),
            backtest_security_groups=_csv(env, "BACKTEST_SECURITY_GROUPS"),
            endpoint_url=_optional(env, "AWS_ENDPOINT_URL"),
            retention_days=_positive_int(env, "RETENTION_DAYS", 30),
        )

    def resource_name(self, name: str) -> str:
        """Name of a per-environment resource, e.g. ``tradai-backend-dev``."""
        return _resource_name(name, self.environment)

    def require(self, field: str) -> str:
        """Return an optional setting that this caller cannot work without."""
        value = getattr(self, field, None)
        if not isinstance(value, str) or not value:
            raise ValueError(f"setting {field!r} is required but not configured")
        return value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
