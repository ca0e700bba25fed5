"""ECS task definitions and services.

- The 4 API services (backend-api, data-collection, strategy-service, mlflow) run as
  Fargate services unless the environment uses the consolidated EC2 host (dev/staging).
- The trading services (dry-run-trading, live-trading) run the strategy-service image as
  Fargate services in every environment; live trading never runs on Spot in prod.
- The backtest task definition is run on demand by the backtest-consumer Lambda.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    AWS_REGION,
    BACKTEST_TASK,
    ENVIRONMENT,
    PROJECT_NAME,
    SERVICES,
    TRADING_SERVICES,
    get_ecs_service_name,
    get_env_settings,
    get_resource_name,
    get_tags,
)

from .ecs import EcsCluster, capacity_strategy
from .iam import Roles
from .refs import Upstream

MLFLOW_COMMAND = (
    'export MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:'
    '$(python3 -c \'import os, urllib.parse; print(urllib.parse.quote(os.environ["DB_PASSWORD"], safe=""))\')'
    '@${DB_HOST}:${DB_PORT}/${DB_NAME}" && '
    "exec mlflow server --host 0.0.0.0 --port 5000 --serve-artifacts "
    '--artifacts-destination "s3://${MLFLOW_BUCKET}/artifacts"'
)


def log_group(key: str) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup(
        f"{key}-logs",
        name=f"/{PROJECT_NAME}/{ENVIRONMENT}/{key}",
        retention_in_days=get_env_settings().log_retention_days,
        tags=get_tags(key),
    )


def mlflow_environment(up: Upstream) -> tuple[dict[str, pulumi.Input[str]], list[dict[str, Any]]]:
    """Database coordinates as variables, the password injected from Secrets Manager."""
    env = {"DB_HOST": up.rds_address, "DB_PORT": up.rds_port.apply(lambda p: str(int(p))), "DB_NAME": up.rds_db_name}
    secrets = [{"name": "DB_PASSWORD", "valueFrom": pulumi.Output.concat(up.rds_secret_arn, ":password::")}]
    return env, secrets


class EcsWorkloads:
    def __init__(
        self,
        up: Upstream,
        cluster: EcsCluster,
        roles: Roles,
        images: dict[str, pulumi.Output[str]],
        target_groups: dict[str, aws.lb.TargetGroup],
        listener: aws.lb.Listener,
        trading_desired_count: int,
    ) -> None:
        self.up, self.cluster, self.roles, self.images = up, cluster, roles, images
        settings = get_env_settings()
        self.services: dict[str, aws.ecs.Service] = {}
        self.service_names: dict[str, str] = {}

        if not settings.consolidated_ec2:
            for service, spec in SERVICES.items():
                env: dict[str, pulumi.Input[str]] = {}
                secrets: list[dict[str, Any]] = []
                command = None
                if spec.get("database"):
                    env, secrets = mlflow_environment(up)
                    command = ["sh", "-c", MLFLOW_COMMAND]
                task = self._task_definition(
                    service,
                    spec["service_name"],
                    spec,
                    service,
                    port=spec["port"],
                    env=env,
                    secrets=secrets,
                    command=command,
                )
                self._service(
                    service,
                    spec["service_name"],
                    task,
                    desired_count=settings.service_desired_count,
                    # Prod keeps one on-demand task per service and adds Spot capacity above it.
                    strategy=capacity_strategy(settings.use_fargate_spot, keep_on_demand_base=True),
                    load_balancer={
                        "target_group_arn": target_groups[service].arn,
                        "container_name": service,
                        "container_port": spec["port"],
                    },
                    depends_on=[listener],
                )

        for name, spec in TRADING_SERVICES.items():
            spot = settings.live_trading_on_spot if name == "live-trading" else settings.use_fargate_spot
            task = self._task_definition(
                name, name, spec, spec["image"], env={"TRADING_MODE": spec["mode"], "ECS_CLUSTER": cluster.name}
            )
            self._service(
                name,
                name,
                task,
                desired_count=trading_desired_count,
                strategy=capacity_strategy(spot),
                ignore_desired_count=True,
            )

        self.backtest_task = self._task_definition(
            "backtest",
            "backtest",
            BACKTEST_TASK,
            BACKTEST_TASK["image"],
            container_name="backtest",
            env={"TRADAI_MODE": "backtest"},
        )
        self.backtest_family = get_resource_name("backtest")

    def _task_definition(
        self,
        key: str,
        family_name: str,
        spec: dict[str, Any],
        image_key: str,
        *,
        port: int | None = None,
        env: dict[str, pulumi.Input[str]] | None = None,
        secrets: list[dict[str, Any]] | None = None,
        command: list[str] | None = None,
        container_name: str | None = None,
    ) -> aws.ecs.TaskDefinition:
        logs = log_group(family_name)
        role = self.roles.task_role(key, spec)
        environment = {**self.up.environment_for(spec), "TRADAI_SERVICE": family_name, **(env or {})}
        container: dict[str, Any] = {
            "name": container_name or key,
            "image": self.images[image_key],
            "essential": True,
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "secrets": secrets or [],
            "readonlyRootFilesystem": False,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": logs.name, "awslogs-region": AWS_REGION, "awslogs-stream-prefix": key},
            },
        }
        if port:
            container["portMappings"] = [{"containerPort": port, "protocol": "tcp"}]
        if command:
            container["command"] = command
        return aws.ecs.TaskDefinition(
            f"{key}-task",
            family=get_resource_name(family_name),
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(spec["cpu"]),
            memory=str(spec["memory"]),
            execution_role_arn=self.roles.execution.arn,
            task_role_arn=role.arn,
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            container_definitions=pulumi.Output.json_dumps([container]),
            tags=get_tags(key),
        )

    def _service(
        self,
        key: str,
        service_name: str,
        task: aws.ecs.TaskDefinition,
        *,
        desired_count: int,
        strategy: list[dict],
        load_balancer: dict | None = None,
        depends_on: list | None = None,
        ignore_desired_count: bool = False,
    ) -> None:
        name = get_ecs_service_name(key)
        self.services[key] = aws.ecs.Service(
            f"{key}-service",
            name=name,
            cluster=self.cluster.cluster.arn,
            task_definition=task.arn,
            desired_count=desired_count,
            capacity_provider_strategies=strategy,
            network_configuration={
                "subnets": self.up.private_subnet_ids,
                "security_groups": [self.up.ecs_sg_id],
                "assign_public_ip": False,
            },
            load_balancers=[load_balancer] if load_balancer else [],
            health_check_grace_period_seconds=60 if load_balancer else None,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            enable_execute_command=True,
            propagate_tags="SERVICE",
            tags=get_tags(key),
            opts=pulumi.ResourceOptions(
                depends_on=(depends_on or []) + [self.cluster.capacity_providers],
                ignore_changes=["desired_count"] if ignore_desired_count else None,
            ),
        )
        self.service_names[key] = name

    def service_arns(self, keys: list[str]) -> list[pulumi.Output[str]]:
        return [
            pulumi.Output.concat(
                "arn:aws:ecs:",
                AWS_REGION,
                ":",
                self.up.account_id,
                ":service/",
                self.cluster.name,
                "/",
                get_ecs_service_name(key),
            )
            for key in keys
        ]
