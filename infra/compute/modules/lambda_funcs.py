"""The 17 container-image Lambda functions, pinned by digest, and their triggers.

One function per ``lambdas/<name>/Dockerfile`` (config.LAMBDA_NAMES), named
``tradai-<name>-<env>``, running ``<ECR repository URL>@<digest>`` from the build tool's
image manifest. Functions run outside the VPC: they only call AWS APIs, so they keep
working when a NAT instance is being replaced.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    ENVIRONMENT,
    LAMBDA_ARCHITECTURE,
    LAMBDA_NAMES,
    LAMBDA_SETTINGS,
    PROJECT_NAME,
    get_env_settings,
    get_lambda_repo_name,
    get_resource_name,
    get_tags,
)
from tradai_infra_shared.core import PolicyBuilder

from .ecs_services import EcsWorkloads
from .iam import Roles
from .refs import Upstream, pick


def image_uri(repository_urls: pulumi.Output[dict[str, str]], repository: str, digest: str) -> pulumi.Output[str]:
    """``<repository URL>@<digest>``: an immutable reference to exactly the pushed image."""
    return pick(repository_urls, repository).apply(lambda url: f"{url}@{digest}")


class LambdaFunctions:
    def __init__(
        self,
        up: Upstream,
        roles: Roles,
        digests: dict[str, str],
        workloads: EcsWorkloads,
        schedules: dict[str, str],
    ) -> None:
        settings = get_env_settings()
        self.functions: dict[str, aws.lambda_.Function] = {}
        for name in LAMBDA_NAMES:
            spec: dict[str, Any] = LAMBDA_SETTINGS[name]
            function_name = get_resource_name(name)
            env = {**up.environment_for(spec), "TRADAI_SERVICE": name}
            extra = PolicyBuilder()
            if spec.get("ecs") == "run-backtest":
                env.update(
                    {
                        "ECS_CLUSTER": workloads.cluster.name,
                        "BACKTEST_TASK_DEFINITION": workloads.backtest_family,
                        "BACKTEST_SUBNETS": up.private_subnet_ids.apply(",".join),
                        "BACKTEST_SECURITY_GROUPS": up.ecs_sg_id,
                    }
                )
                extra.allow(
                    ["ecs:RunTask"],
                    [up.arn("ecs", f"task-definition/{workloads.backtest_family}:*")],
                    sid="RunBacktest",
                    conditions={"ArnEquals": {"ecs:cluster": workloads.cluster.cluster.arn}},
                )
                extra.allow(
                    ["iam:PassRole"], [roles.task_roles["backtest"].arn, roles.execution.arn], sid="PassBacktestRoles"
                )
            elif spec.get("ecs") == "trading-services":
                env["ECS_CLUSTER"] = workloads.cluster.name
                extra.allow(
                    ["ecs:UpdateService", "ecs:DescribeServices"],
                    workloads.service_arns(["dry-run-trading", "live-trading"]),
                    sid="TradingServices",
                )
            role = roles.lambda_role(name, spec, extra if len(extra) else None)
            log_group = aws.cloudwatch.LogGroup(
                f"lambda-{name}-logs",
                name=f"/aws/lambda/{function_name}",
                retention_in_days=settings.log_retention_days,
                tags=get_tags(name),
            )
            repository = get_lambda_repo_name(name)
            function = aws.lambda_.Function(
                f"lambda-{name}",
                name=function_name,
                package_type="Image",
                image_uri=image_uri(up.ecr_urls, repository, digests[repository]),
                role=role.arn,
                architectures=[LAMBDA_ARCHITECTURE],
                timeout=spec.get("timeout", 60),
                memory_size=spec.get("memory", 256),
                environment={"variables": env},
                logging_config={"log_format": "JSON", "log_group": log_group.name},
                tracing_config={"mode": "Active"},
                tags=get_tags(name),
                opts=pulumi.ResourceOptions(depends_on=[log_group]),
            )
            self.functions[name] = function
            self._trigger(name, function, spec.get("trigger"), up, schedules)

    def _trigger(
        self, name: str, function: aws.lambda_.Function, trigger: tuple | None, up: Upstream, schedules: dict[str, str]
    ) -> None:
        if trigger is None:
            return
        kind = trigger[0]
        if kind == "sqs":
            aws.lambda_.EventSourceMapping(
                f"lambda-{name}-sqs",
                event_source_arn=up.queue_arns[trigger[1]],
                function_name=function.arn,
                batch_size=10,
                maximum_batching_window_in_seconds=5,
                function_response_types=["ReportBatchItemFailures"],
            )
        elif kind == "schedule":
            _, config_key, default = trigger
            rule = aws.cloudwatch.EventRule(
                f"lambda-{name}-schedule",
                name=get_resource_name(f"{name}-schedule"),
                schedule_expression=schedules.get(config_key, default),
                tags=get_tags(name),
            )
            self._invoke_from_events(name, function, rule)
        elif kind == "alarms":
            rule = aws.cloudwatch.EventRule(
                f"lambda-{name}-alarms",
                name=get_resource_name(f"{name}-alarms"),
                event_pattern=json.dumps(
                    {
                        "source": ["aws.cloudwatch"],
                        "detail-type": ["CloudWatch Alarm State Change"],
                        "detail": {"alarmName": [{"wildcard": f"{PROJECT_NAME}-*-{ENVIRONMENT}"}]},
                    }
                ),
                tags=get_tags(name),
            )
            self._invoke_from_events(name, function, rule)
        elif kind == "s3":
            _, bucket_key, prefix = trigger
            bucket = pick(up.bucket_names, bucket_key)
            permission = aws.lambda_.Permission(
                f"lambda-{name}-s3-permission",
                action="lambda:InvokeFunction",
                function=function.name,
                principal="s3.amazonaws.com",
                source_arn=pick(up.bucket_arns, bucket_key),
                source_account=up.account_id,
            )
            # The bucket lives in the persistent stack; its notification configuration is
            # owned here, next to the function it invokes.
            aws.s3.BucketNotification(
                f"{bucket_key}-bucket-notification",
                bucket=bucket,
                lambda_functions=[
                    {
                        "lambda_function_arn": function.arn,
                        "events": ["s3:ObjectCreated:*"],
                        "filter_prefix": prefix,
                        "filter_suffix": ".json",
                    }
                ],
                opts=pulumi.ResourceOptions(depends_on=[permission]),
            )
        else:
            raise ValueError(f"unknown trigger {trigger!r} for Lambda {name}")

    @staticmethod
    def _invoke_from_events(name: str, function: aws.lambda_.Function, rule: aws.cloudwatch.EventRule) -> None:
        aws.cloudwatch.EventTarget(f"lambda-{name}-target", rule=rule.name, arn=function.arn)
        aws.lambda_.Permission(
            f"lambda-{name}-events-permission",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
        )

    @property
    def names(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{n: f.name for n, f in self.functions.items()})

    @property
    def arns(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{n: f.arn for n, f in self.functions.items()})
