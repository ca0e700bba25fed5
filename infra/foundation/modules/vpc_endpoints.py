"""Gateway (S3, DynamoDB) and interface VPC endpoints, so private workloads reach AWS APIs
without the NAT. The S3 endpoint policy allows TradAI's buckets and the AWS-owned buckets
that system packages, ECR layers and the SSM agent are served from (AllowSystemPackageBuckets).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import AWS_REGION, get_env_settings, get_resource_name, get_tags
from tradai_infra_shared.core import PolicyBuilder

INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "sts", "ssm", "ssmmessages", "ec2messages", "sqs", "logs", "secretsmanager")
SYSTEM_PACKAGE_BUCKETS = (
    f"arn:aws:s3:::al2023-repos-{AWS_REGION}-*/*",
    f"arn:aws:s3:::amazonlinux-2-repos-{AWS_REGION}/*",
    f"arn:aws:s3:::prod-{AWS_REGION}-starport-layer-bucket/*",
    f"arn:aws:s3:::amazon-ssm-{AWS_REGION}/*",
    f"arn:aws:s3:::aws-ssm-{AWS_REGION}/*",
)


class VpcEndpoints:
    def __init__(
        self,
        vpc_id: pulumi.Input[str],
        route_table_ids: list[pulumi.Input[str]],
        private_subnet_ids: list[pulumi.Input[str]],
        security_group_id: pulumi.Input[str],
        bucket_arns: pulumi.Output[dict[str, str]],
    ) -> None:
        settings = get_env_settings()
        arns = bucket_arns.apply(lambda m: sorted(m.values()))
        s3_policy = (
            PolicyBuilder()
            .allow(
                [
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:GetObjectVersion",
                    "s3:ListBucketVersions",
                ],
                arns.apply(lambda a: a + [f"{arn}/*" for arn in a]),
                sid="TradaiBuckets",
                principal="*",
            )
            .allow(["s3:GetObject"], list(SYSTEM_PACKAGE_BUCKETS), sid="AllowSystemPackageBuckets", principal="*")
        )
        self.s3 = aws.ec2.VpcEndpoint(
            "s3-endpoint",
            vpc_id=vpc_id,
            service_name=f"com.amazonaws.{AWS_REGION}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=route_table_ids,
            policy=s3_policy.to_json(),
            tags=get_tags("network") | {"Name": get_resource_name("s3-endpoint")},
        )
        self.dynamodb = aws.ec2.VpcEndpoint(
            "dynamodb-endpoint",
            vpc_id=vpc_id,
            service_name=f"com.amazonaws.{AWS_REGION}.dynamodb",
            vpc_endpoint_type="Gateway",
            route_table_ids=route_table_ids,
            tags=get_tags("network") | {"Name": get_resource_name("dynamodb-endpoint")},
        )
        # Interface endpoints are billed per AZ: single-AZ environments place them in one.
        subnets = private_subnet_ids if settings.multi_az else private_subnet_ids[:1]
        self.interface: dict[str, aws.ec2.VpcEndpoint] = {
            service: aws.ec2.VpcEndpoint(
                f"{service.replace('.', '-')}-endpoint",
                vpc_id=vpc_id,
                service_name=f"com.amazonaws.{AWS_REGION}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=subnets,
                security_group_ids=[security_group_id],
                tags=get_tags("network") | {"Name": get_resource_name(f"{service.replace('.', '-')}-endpoint")},
            )
            for service in INTERFACE_SERVICES
        }
