"""update-nat-routes: the 18th Lambda, inline Python (no image, not part of lambda-bootstrap).

When a NAT instance ASG (foundation) launches an instance, the function disables the
instance's source/destination check and points every private route table the ASG is
tagged with at the new instance. It runs outside the VPC: it must work precisely when
the NAT it repairs is gone.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import AWS_REGION, get_env_settings, get_resource_name, get_tags
from tradai_infra_shared.core import PolicyBuilder, assume_role_policy

from .refs import Upstream

NAME = "update-nat-routes"
ROUTE_TABLES_TAG = "tradai:route-tables"  # set on each NAT ASG by foundation's nat_instance.py

HANDLER = """
import os

import boto3
from botocore.exceptions import ClientError

ec2 = boto3.client("ec2")
autoscaling = boto3.client("autoscaling")
TAG = os.environ["ROUTE_TABLES_TAG"]


def handler(event, context):
    detail = event.get("detail") or {}
    instance_id, group = detail.get("EC2InstanceId"), detail.get("AutoScalingGroupName")
    if not instance_id or not group:
        return {"updated": [], "reason": "not an instance launch event"}
    tags = autoscaling.describe_tags(Filters=[
        {"Name": "auto-scaling-group", "Values": [group]}, {"Name": "key", "Values": [TAG]},
    ])["Tags"]
    route_tables = [rt for tag in tags for rt in tag["Value"].split(",") if rt]
    ec2.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": False})
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for route_table in route_tables:
        route = {"RouteTableId": route_table, "DestinationCidrBlock": "0.0.0.0/0", "NetworkInterfaceId": eni}
        try:
            ec2.replace_route(**route)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("InvalidRoute.NotFound", "InvalidParameterValue"):
                raise
            ec2.create_route(**route)
    print({"instance": instance_id, "eni": eni, "route_tables": route_tables})
    return {"updated": route_tables, "instance": instance_id}
"""


class UpdateNatRoutes:
    def __init__(self, up: Upstream) -> None:
        settings = get_env_settings()
        function_name = get_resource_name(NAME)
        self.log_group = aws.cloudwatch.LogGroup(
            f"lambda-{NAME}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=settings.log_retention_days,
            tags=get_tags(NAME),
        )
        role = aws.iam.Role(
            f"lambda-{NAME}-role",
            name=get_resource_name(f"{NAME}-fn"),
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            tags=get_tags(NAME),
        )
        route_table_arns = pulumi.Output.all(up.account_id, up.private_route_table_ids).apply(
            lambda a: [f"arn:aws:ec2:{AWS_REGION}:{a[0]}:route-table/{rt}" for rt in a[1]]
        )
        policy = (
            PolicyBuilder()
            .allow(["ec2:ReplaceRoute", "ec2:CreateRoute"], route_table_arns, sid="PrivateRoutes")
            .allow(
                ["ec2:ModifyInstanceAttribute"],
                [up.arn("ec2", "instance/*")],
                sid="NatInstances",
                conditions={"StringEquals": {"aws:ResourceTag/Service": "nat"}},
            )
            # Describe APIs have no resource-level permissions.
            .allow(["ec2:DescribeInstances", "autoscaling:DescribeTags"], ["*"], sid="Describe")
            .allow(
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                [pulumi.Output.concat(self.log_group.arn, ":*")],
                sid="OwnLogs",
            )
        )
        aws.iam.RolePolicy(f"lambda-{NAME}-policy", role=role.id, policy=policy.to_json())
        self.function = aws.lambda_.Function(
            f"lambda-{NAME}",
            name=function_name,
            runtime="python3.12",
            handler="index.handler",
            code=pulumi.AssetArchive({"index.py": pulumi.StringAsset(HANDLER)}),
            role=role.arn,
            timeout=60,
            memory_size=128,
            environment={"variables": {"ROUTE_TABLES_TAG": ROUTE_TABLES_TAG}},
            logging_config={"log_format": "JSON", "log_group": self.log_group.name},
            tags=get_tags(NAME),
            opts=pulumi.ResourceOptions(depends_on=[self.log_group]),
        )
        rule = aws.cloudwatch.EventRule(
            f"lambda-{NAME}-rule",
            name=get_resource_name(NAME),
            event_pattern=up.nat_asg_names.apply(
                lambda names: json.dumps(
                    {
                        "source": ["aws.autoscaling"],
                        "detail-type": ["EC2 Instance Launch Successful"],
                        "detail": {"AutoScalingGroupName": list(names)},
                    }
                )
            ),
            tags=get_tags(NAME),
        )
        aws.cloudwatch.EventTarget(f"lambda-{NAME}-target", rule=rule.name, arn=self.function.arn)
        aws.lambda_.Permission(
            f"lambda-{NAME}-permission",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
        )
