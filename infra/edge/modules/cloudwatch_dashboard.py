"""Trading platform dashboard: traffic, latency, services, queues, Lambdas, strategies."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import AWS_REGION, ENVIRONMENT, get_resource_name

from .cloudwatch_alarms import HEARTBEAT_METRIC, HEARTBEAT_NAMESPACE


def _widget(title: str, metrics: list, x: int, y: int, stat: str = "Sum") -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": AWS_REGION,
            "stat": stat,
            "period": 300,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def body(
    alb: str, queue: str, dlq: str, cluster: str, services: dict[str, str], functions: dict[str, str]
) -> dict[str, Any]:
    return {
        "widgets": [
            _widget(
                "ALB requests and 5xx",
                [
                    ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", alb],
                    ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", alb],
                ],
                0,
                0,
            ),
            _widget(
                "ALB p95 latency (s)",
                [["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", alb]],
                12,
                0,
                stat="p95",
            ),
            _widget(
                "ECS CPU utilisation",
                [
                    ["AWS/ECS", "CPUUtilization", "ClusterName", cluster, "ServiceName", name]
                    for name in sorted(services.values())
                ],
                0,
                6,
                stat="Average",
            ),
            _widget(
                "Backtest queues",
                [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue],
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq],
                ],
                12,
                6,
                stat="Maximum",
            ),
            _widget(
                "Lambda errors",
                [["AWS/Lambda", "Errors", "FunctionName", name] for name in sorted(functions.values())],
                0,
                12,
            ),
            _widget(
                "Active strategies",
                [[HEARTBEAT_NAMESPACE, HEARTBEAT_METRIC, "Environment", ENVIRONMENT]],
                12,
                12,
                stat="Minimum",
            ),
        ]
    }


class Dashboard:
    def __init__(
        self,
        alb_arn_suffix: pulumi.Input[str],
        queue_name: pulumi.Input[str],
        dlq_name: pulumi.Input[str],
        cluster_name: pulumi.Input[str],
        service_names: pulumi.Input[dict[str, str]],
        function_names: pulumi.Input[dict[str, str]],
    ) -> None:
        self.dashboard = aws.cloudwatch.Dashboard(
            "dashboard",
            dashboard_name=get_resource_name("trading"),
            dashboard_body=pulumi.Output.json_dumps(
                pulumi.Output.all(
                    alb_arn_suffix, queue_name, dlq_name, cluster_name, service_names, function_names
                ).apply(lambda a: body(*a))
            ),
        )
