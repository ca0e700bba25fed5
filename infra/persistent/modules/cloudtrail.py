"""CloudTrail audit logging into the logs bucket (which this module's policy governs)."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import AWS_REGION, get_resource_name, get_tags

from .s3 import tls_only_statement

PREFIX = "cloudtrail"


class CloudTrail:
    def __init__(self, logs_bucket: aws.s3.Bucket, account_id: pulumi.Input[str]) -> None:
        trail_name = get_resource_name("trail")
        trail_arn = pulumi.Output.concat("arn:aws:cloudtrail:", AWS_REGION, ":", account_id, ":trail/", trail_name)

        def policy(args: list[str]) -> str:
            bucket_arn, account, source_arn = args
            return json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        tls_only_statement(bucket_arn),
                        {
                            "Sid": "AWSCloudTrailAclCheck",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudtrail.amazonaws.com"},
                            "Action": "s3:GetBucketAcl",
                            "Resource": bucket_arn,
                            "Condition": {"StringEquals": {"aws:SourceArn": source_arn}},
                        },
                        {
                            "Sid": "AWSCloudTrailWrite",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudtrail.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": f"{bucket_arn}/{PREFIX}/AWSLogs/{account}/*",
                            "Condition": {
                                "StringEquals": {
                                    "s3:x-amz-acl": "bucket-owner-full-control",
                                    "aws:SourceArn": source_arn,
                                }
                            },
                        },
                    ],
                }
            )

        self.bucket_policy = aws.s3.BucketPolicy(
            "logs-policy",
            bucket=logs_bucket.id,
            policy=pulumi.Output.all(logs_bucket.arn, account_id, trail_arn).apply(policy),
            # A child of the logs bucket, as the other buckets' policies are, so it shares the
            # bucket's protection: a destroy that keeps the bucket keeps its TLS-only policy.
            # The alias is the URN it had as a top-level resource, so nothing is replaced.
            opts=pulumi.ResourceOptions(parent=logs_bucket, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]),
        )
        self.trail = aws.cloudtrail.Trail(
            "trail",
            name=trail_name,
            s3_bucket_name=logs_bucket.id,
            s3_key_prefix=PREFIX,
            include_global_service_events=True,
            is_multi_region_trail=True,
            enable_log_file_validation=True,
            tags=get_tags("audit"),
            opts=pulumi.ResourceOptions(depends_on=[self.bucket_policy]),
        )
