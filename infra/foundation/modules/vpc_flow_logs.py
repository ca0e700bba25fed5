"""VPC Flow Logs to CloudWatch Logs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import ENVIRONMENT, PROJECT_NAME, get_env_settings, get_resource_name, get_tags
from tradai_infra_shared.core import PolicyBuilder, assume_role_policy


class VpcFlowLogs:
    def __init__(self, vpc_id: pulumi.Input[str]) -> None:
        self.log_group = aws.cloudwatch.LogGroup(
            "flow-logs",
            name=f"/{PROJECT_NAME}/{ENVIRONMENT}/vpc-flow-logs",
            retention_in_days=get_env_settings().log_retention_days,
            tags=get_tags("network"),
        )
        self.role = aws.iam.Role(
            "flow-logs-role",
            name=get_resource_name("flow-logs-role"),
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com"),
            tags=get_tags("network"),
        )
        aws.iam.RolePolicy(
            "flow-logs-policy",
            role=self.role.id,
            policy=(
                PolicyBuilder()
                .allow(
                    ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    [self.log_group.arn, pulumi.Output.concat(self.log_group.arn, ":*")],
                    sid="FlowLogs",
                )
                .to_json()
            ),
        )
        self.flow_log = aws.ec2.FlowLog(
            "flow-log",
            vpc_id=vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.log_group.arn,
            iam_role_arn=self.role.arn,
            max_aggregation_interval=600,
            tags=get_tags("network") | {"Name": get_resource_name("flow-log")},
        )
