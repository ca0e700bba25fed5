"""IAM roles: ECS task execution, one task role per workload, one role per Lambda, and the
consolidated EC2 host's role and instance profile. Every grant names its resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    ECR_REPOSITORIES,
    SERVICES,
    get_resource_name,
    get_secret_name,
    get_tags,
)
from tradai_infra_shared.core import PolicyBuilder, assume_role_policy

from .refs import Upstream

QUEUE_ACTIONS = {
    "send": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
    "consume": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
    "inspect": ["sqs:GetQueueAttributes"],
    "redrive": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
}
ECS_EXEC_ACTIONS = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]


def workload_policy(up: Upstream, spec: dict[str, Any], builder: PolicyBuilder | None = None) -> PolicyBuilder:
    """Grants for the tables, buckets, queues and topics a workload spec names."""
    policy = builder or PolicyBuilder()
    policy.allow_dynamodb(up.table_arns_for(spec.get("tables", [])))
    buckets: dict[str, str] = spec.get("buckets", {})
    policy.allow_s3(up.bucket_arns_for([k for k, mode in buckets.items() if mode == "write"]), write=True)
    policy.allow_s3(up.bucket_arns_for([k for k, mode in buckets.items() if mode == "read"]), write=False)
    for queue, mode in sorted(spec.get("queues", {}).items()):
        policy.allow(QUEUE_ACTIONS[mode], [up.queue_arns[queue]], sid=f"Sqs{queue.title()}")
    topics = [up.topic_arns[t] for t in spec.get("topics", [])]
    if topics:
        policy.allow(["sns:Publish"], topics, sid="Publish")
    return policy


class Roles:
    def __init__(self, up: Upstream, state_machine_arn: pulumi.Output[str]) -> None:
        self.up = up
        self.state_machine_arn = state_machine_arn
        self.execution = aws.iam.Role(
            "ecs-execution-role",
            name=get_resource_name("ecs-execution"),
            assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
            tags=get_tags("ecs"),
        )
        aws.iam.RolePolicyAttachment(
            "ecs-execution-managed",
            role=self.execution.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
        )
        aws.iam.RolePolicy(
            "ecs-execution-secrets",
            role=self.execution.id,
            policy=PolicyBuilder()
            .allow(["secretsmanager:GetSecretValue"], [up.rds_secret_arn], sid="DatabaseSecret")
            .to_json(),
        )
        self.task_roles: dict[str, aws.iam.Role] = {}

    def task_role(self, key: str, spec: dict[str, Any]) -> aws.iam.Role:
        """A task role for an ECS workload (service, trading service or backtest)."""
        role = aws.iam.Role(
            f"{key}-task-role",
            name=get_resource_name(f"{key}-task"),
            assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
            tags=get_tags(key),
        )
        policy = workload_policy(self.up, spec)
        policy.allow(ECS_EXEC_ACTIONS, ["*"], sid="EcsExec")  # these actions have no resource scope
        if spec.get("state_machine"):
            policy.allow(["states:StartExecution"], [self.state_machine_arn], sid="StartBacktestWorkflow")
        aws.iam.RolePolicy(f"{key}-task-policy", role=role.id, policy=policy.to_json())
        self.task_roles[key] = role
        return role

    def lambda_role(self, name: str, spec: dict[str, Any], extra: PolicyBuilder | None = None) -> aws.iam.Role:
        function_name = get_resource_name(name)
        role = aws.iam.Role(
            f"lambda-{name}-role",
            name=get_resource_name(f"{name}-fn"),
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            tags=get_tags(name),
        )
        policy = workload_policy(self.up, spec, extra)
        policy.allow(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [self.up.arn("logs", f"log-group:/aws/lambda/{function_name}:*")],
            sid="OwnLogs",
        )
        policy.allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"], sid="Tracing")
        for secret in spec.get("secrets", []):
            policy.allow(
                ["secretsmanager:GetSecretValue"],
                [self.up.arn("secretsmanager", f"secret:{get_secret_name(secret)}-*")],
                sid="Secrets",
            )
        aws.iam.RolePolicy(f"lambda-{name}-policy", role=role.id, policy=policy.to_json())
        return role

    def consolidated(
        self,
        service_specs: Sequence[dict[str, Any]],
        log_group_arn: pulumi.Input[str],
        discovery_service_arn: pulumi.Input[str],
    ) -> aws.iam.InstanceProfile:
        """Role and instance profile of the consolidated EC2 host running the services."""
        role = aws.iam.Role(
            "consolidated-role",
            name=get_resource_name("consolidated"),
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=get_tags("consolidated"),
        )
        aws.iam.RolePolicyAttachment(
            "consolidated-ssm", role=role.name, policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
        )
        merged: dict[str, Any] = {"tables": [], "buckets": {}, "queues": {}, "topics": []}
        for spec in service_specs:
            merged["tables"] = sorted(set(merged["tables"]) | set(spec.get("tables", [])))
            for key, mode in spec.get("buckets", {}).items():
                merged["buckets"][key] = "write" if "write" in (mode, merged["buckets"].get(key)) else "read"
            merged["queues"].update(spec.get("queues", {}))
            merged["topics"] = sorted(set(merged["topics"]) | set(spec.get("topics", [])))
        policy = workload_policy(self.up, merged)
        service_repos = [f"tradai/{service}" for service in SERVICES]
        assert set(service_repos) <= set(ECR_REPOSITORIES)
        policy.allow(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin")
        policy.allow(
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            [self.up.ecr_arns.apply(lambda m, r=repo: m[r]) for repo in service_repos],
            sid="EcrPull",
        )
        policy.allow(
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group_arn, pulumi.Output.concat(log_group_arn, ":*")],
            sid="ContainerLogs",
        )
        policy.allow(["secretsmanager:GetSecretValue"], [self.up.rds_secret_arn], sid="DatabaseSecret")
        policy.allow(
            ["servicediscovery:RegisterInstance", "servicediscovery:DeregisterInstance"],
            [discovery_service_arn],
            sid="CloudMap",
        )
        policy.allow(
            [
                "route53:ChangeResourceRecordSets",
                "route53:GetHealthCheck",
                "route53:CreateHealthCheck",
                "route53:UpdateHealthCheck",
                "route53:DeleteHealthCheck",
            ],
            ["*"],
            sid="CloudMapRecords",
        )  # Cloud Map manages records on the caller's behalf
        policy.allow(["states:StartExecution"], [self.state_machine_arn], sid="StartBacktestWorkflow")
        aws.iam.RolePolicy("consolidated-policy", role=role.id, policy=policy.to_json())
        return aws.iam.InstanceProfile("consolidated-profile", name=get_resource_name("consolidated"), role=role.name)
