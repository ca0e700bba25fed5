"""Least-privilege IAM policy documents built from statements, not pasted JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi


class PolicyBuilder:
    """Collects IAM statements and renders them as a policy document.

    Resources may be Pulumi outputs (ARNs of resources created in the same program or read
    from an upstream stack); ``to_json`` resolves them into one ``Output[str]``.

    >>> PolicyBuilder().allow(["s3:GetObject"], [f"{bucket_arn}/*"]).to_json()
    """

    def __init__(self) -> None:
        self._statements: list[dict[str, Any]] = []

    def allow(
        self,
        actions: Sequence[str],
        resources: Sequence[pulumi.Input[str]] | pulumi.Input[str],
        *,
        sid: str | None = None,
        conditions: dict[str, Any] | None = None,
        principal: Any = None,
    ) -> PolicyBuilder:
        """Add an Allow statement. Wildcard actions ("*", "svc:*") are rejected.

        ``principal`` is only for resource policies (VPC endpoint, bucket, topic policies).
        """
        if not actions:
            raise ValueError("a statement needs at least one action")
        for action in actions:
            if action == "*" or action.endswith(":*"):
                raise ValueError(f"refusing wildcard action {action!r}: name the actions needed")
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Action": sorted(set(actions)),
            "Resource": list(resources)
            if isinstance(resources, (list, tuple))
            else pulumi.Output.from_input(resources).apply(lambda r: list(r) if isinstance(r, (list, tuple)) else [r]),
        }
        if principal is not None:
            statement["Principal"] = principal
        if sid:
            statement["Sid"] = sid
        if conditions:
            statement["Condition"] = conditions
        self._statements.append(statement)
        return self

    def allow_dynamodb(self, table_arns: Sequence[pulumi.Input[str]], *, write: bool = True) -> PolicyBuilder:
        """Read (and optionally write) specific tables and their indexes."""
        if not table_arns:
            return self
        actions = [
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ]
        if write:
            actions += ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        resources: list[pulumi.Input[str]] = []
        for arn in table_arns:
            resources += [arn, pulumi.Output.concat(arn, "/index/*")]
        return self.allow(actions, resources, sid="DynamoDB")

    def allow_s3(self, bucket_arns: Sequence[pulumi.Input[str]], *, write: bool = True) -> PolicyBuilder:
        """List specific buckets and read (and optionally write) their objects."""
        if not bucket_arns:
            return self
        self.allow(["s3:ListBucket", "s3:GetBucketLocation"], list(bucket_arns), sid="S3Buckets")
        actions = ["s3:GetObject"] + (["s3:PutObject", "s3:DeleteObject"] if write else [])
        return self.allow(actions, [pulumi.Output.concat(arn, "/*") for arn in bucket_arns], sid="S3Objects")

    def allow_logs(self, log_group_arns: Sequence[pulumi.Input[str]]) -> PolicyBuilder:
        """Write to specific CloudWatch log groups."""
        return self.allow(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [pulumi.Output.concat(arn, ":*") for arn in log_group_arns],
            sid="Logs",
        )

    @property
    def statements(self) -> list[dict[str, Any]]:
        return list(self._statements)

    def __len__(self) -> int:
        return len(self._statements)

    def to_json(self) -> pulumi.Output[str]:
        """The policy document as JSON, once every resource ARN is known."""
        if not self._statements:
            raise ValueError("an empty policy grants nothing; add a statement first")
        statements, seen = [], {}
        for statement in self._statements:
            sid = statement.get("Sid")
            if sid is not None:
                seen[sid] = seen.get(sid, 0) + 1
                if seen[sid] > 1:  # Sids must be unique within a policy
                    statement = {**statement, "Sid": f"{sid}{seen[sid]}"}
            statements.append(statement)
        document = {"Version": "2012-10-17", "Statement": statements}
        return pulumi.Output.from_input(document).apply(lambda doc: json.dumps(doc, sort_keys=True))


def assume_role_policy(*services: str, conditions: dict[str, Any] | None = None) -> str:
    """Trust policy letting the given AWS services (``ecs-tasks.amazonaws.com``...) assume a role."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": sorted(services)},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = conditions
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)
