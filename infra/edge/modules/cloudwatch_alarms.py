"""CloudWatch alarms and one composite alarm that notifies the alerts topic.

Component alarms carry no actions of their own (their state changes reach the alerts topic
in readable form through the alert-notifier Lambda); the composite "platform health"
alarm is the page. The heartbeat alarm fires when fewer strategies report as active than
``alarm_min_strategies`` (missing data counts as breaching).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import ENVIRONMENT, LAMBDA_NAMES, get_resource_name, get_tags

HEARTBEAT_NAMESPACE = "TradAI/Trading"
HEARTBEAT_METRIC = "ActiveStrategies"


class Alarms:
    def __init__(
        self,
        alb_arn_suffix: pulumi.Input[str],
        dlq_name: pulumi.Input[str],
        lambda_function_names: pulumi.Output[dict[str, str]],
        alerts_topic_arn: pulumi.Input[str],
        latency_threshold_ms: int,
        min_strategies: int,
    ) -> None:
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []

        def alarm(key: str, **kwargs) -> aws.cloudwatch.MetricAlarm:
            # Five-minute periods, firing above the threshold, quiet without data,
            # unless an alarm says otherwise.
            kwargs.setdefault("period", 300)
            kwargs.setdefault("comparison_operator", "GreaterThanThreshold")
            kwargs.setdefault("treat_missing_data", "notBreaching")
            created = aws.cloudwatch.MetricAlarm(
                f"{key}-alarm", name=get_resource_name(key), tags=get_tags("monitoring"), **kwargs
            )
            self.alarms.append(created)
            return created

        alarm(
            "alb-5xx",
            alarm_description="ALB targets return 5xx responses",
            namespace="AWS/ApplicationELB",
            metric_name="HTTPCode_Target_5XX_Count",
            dimensions={"LoadBalancer": alb_arn_suffix},
            statistic="Sum",
            evaluation_periods=1,
            threshold=10,
        )
        alarm(
            "alb-latency",
            alarm_description=f"p95 target response time above {latency_threshold_ms} ms",
            namespace="AWS/ApplicationELB",
            metric_name="TargetResponseTime",
            dimensions={"LoadBalancer": alb_arn_suffix},
            extended_statistic="p95",
            evaluation_periods=3,
            threshold=latency_threshold_ms / 1000,
        )
        alarm(
            "backtest-dlq",
            alarm_description="Backtest messages reached the dead-letter queue",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dlq_name},
            statistic="Maximum",
            evaluation_periods=1,
            threshold=0,
        )
        for name in LAMBDA_NAMES:
            alarm(
                f"{name}-errors",
                alarm_description=f"Lambda {name} reported errors",
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions={"FunctionName": lambda_function_names.apply(lambda m, n=name: m[n])},
                statistic="Sum",
                evaluation_periods=1,
                threshold=0,
            )
        if min_strategies > 0:
            alarm(
                "heartbeat",
                alarm_description=f"Fewer than {min_strategies} strategies are active",
                namespace=HEARTBEAT_NAMESPACE,
                metric_name=HEARTBEAT_METRIC,
                dimensions={"Environment": ENVIRONMENT},
                statistic="Minimum",
                evaluation_periods=2,
                threshold=min_strategies,
                comparison_operator="LessThanThreshold",
                treat_missing_data="breaching",
            )

        self.composite = aws.cloudwatch.CompositeAlarm(
            "platform-health",
            alarm_name=get_resource_name("platform-health"),
            alarm_description="Any TradAI component alarm is firing",
            alarm_rule=pulumi.Output.all(*[a.name for a in self.alarms]).apply(
                lambda names: " OR ".join(f'ALARM("{n}")' for n in names)
            ),
            alarm_actions=[alerts_topic_arn],
            ok_actions=[alerts_topic_arn],
            tags=get_tags("monitoring"),
        )
