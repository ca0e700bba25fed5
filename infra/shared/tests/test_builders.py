"""PolicyBuilder and SecurityRuleBuilder under Pulumi's mock runtime."""

from __future__ import annotations

import json

import pulumi
import pytest

from tradai_infra_shared.core import PolicyBuilder, SecurityRuleBuilder, assume_role_policy


def test_policy_builder_refuses_wildcard_actions() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        PolicyBuilder().allow(["s3:*"], ["arn:aws:s3:::bucket"])
    with pytest.raises(ValueError, match="wildcard"):
        PolicyBuilder().allow(["*"], ["*"])
    with pytest.raises(ValueError, match="empty policy"):
        PolicyBuilder().to_json()


@pulumi.runtime.test
def test_policy_builder_resolves_outputs_and_scopes_resources():
    table = pulumi.Output.from_input("arn:aws:dynamodb:eu-central-1:1:table/t")
    bucket = pulumi.Output.from_input("arn:aws:s3:::b")
    many = pulumi.Output.from_input(["arn:a", "arn:b"])
    policy = (
        PolicyBuilder()
        .allow_dynamodb([table])
        .allow_s3([bucket], write=False)
        .allow(["sqs:SendMessage"], many, sid="Queues")
        .allow(["sqs:SendMessage"], ["arn:c"], sid="Queues")
    )

    def check(text: str) -> None:
        doc = json.loads(text)
        statements = {s["Sid"]: s for s in doc["Statement"]}
        assert statements["DynamoDB"]["Resource"] == [
            "arn:aws:dynamodb:eu-central-1:1:table/t",
            "arn:aws:dynamodb:eu-central-1:1:table/t/index/*",
        ]
        assert statements["S3Objects"]["Action"] == ["s3:GetObject"]
        assert statements["S3Objects"]["Resource"] == ["arn:aws:s3:::b/*"]
        assert statements["Queues"]["Resource"] == ["arn:a", "arn:b"]
        assert statements["Queues2"]["Resource"] == ["arn:c"]  # Sids stay unique
        assert all(s["Effect"] == "Allow" for s in doc["Statement"])

    return policy.to_json().apply(check)


def test_assume_role_policy() -> None:
    doc = json.loads(assume_role_policy("lambda.amazonaws.com"))
    assert doc["Statement"][0]["Principal"] == {"Service": ["lambda.amazonaws.com"]}
    assert doc["Statement"][0]["Action"] == "sts:AssumeRole"


@pulumi.runtime.test
def test_security_rule_builder_creates_described_rules():
    builder = (
        SecurityRuleBuilder("test-sg")
        .ingress_from_cidr(443, "0.0.0.0/0", "HTTPS")
        .ingress_from_sg(8000, "sg-123", "From ALB")
        .egress_all()
    )
    rules = builder.build("sg-target")
    assert len(rules) == 3
    assert [type(r).__name__ for r in rules] == [
        "SecurityGroupIngressRule",
        "SecurityGroupIngressRule",
        "SecurityGroupEgressRule",
    ]
    return pulumi.Output.all(*[r.description for r in rules], rules[0].from_port).apply(
        lambda values: values == ["HTTPS", "From ALB", "All outbound traffic", 443] or pytest.fail(str(values))
    )
