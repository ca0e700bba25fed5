"""The 5 S3 buckets (configs, results, arcticdb, logs, mlflow).

Every bucket is private (public access blocked, owner-enforced), encrypted at rest
(SSE-KMS with the AWS-managed key; SSE-S3 for logs, which log-delivery services require),
TLS-only, lifecycle-managed, and kept on destroy in every environment
(``protection.data_resource_options``; the per-bucket settings are children and inherit it).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import S3_BUCKETS, get_env_settings, get_resource_name, get_tags
from tradai_infra_shared.protection import data_resource_options

VERSIONED = ("configs", "mlflow", "arcticdb")


def tls_only_statement(bucket_arn: str) -> dict:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


class S3Buckets:
    """Creates the buckets; the logs bucket's policy is owned by the CloudTrail module."""

    def __init__(self, account_id: pulumi.Input[str]) -> None:
        settings = get_env_settings()
        self.buckets: dict[str, aws.s3.Bucket] = {}
        for key, purpose in S3_BUCKETS.items():
            bucket = aws.s3.Bucket(
                f"{key}-bucket",
                bucket=pulumi.Output.from_input(account_id).apply(lambda acct, k=key: f"{get_resource_name(k)}-{acct}"),
                force_destroy=False,
                tags=get_tags(key) | {"Purpose": purpose},
                opts=data_resource_options(),
            )
            self.buckets[key] = bucket
            child = pulumi.ResourceOptions(parent=bucket)
            aws.s3.BucketPublicAccessBlock(
                f"{key}-public-access-block",
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            )
            aws.s3.BucketOwnershipControls(
                f"{key}-ownership",
                bucket=bucket.id,
                rule={"object_ownership": "BucketOwnerEnforced"},
                opts=child,
            )
            algorithm = "AES256" if key == "logs" else "aws:kms"
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{key}-encryption",
                bucket=bucket.id,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {"sse_algorithm": algorithm},
                        "bucket_key_enabled": algorithm == "aws:kms",
                    }
                ],
                opts=child,
            )
            if key in VERSIONED:
                aws.s3.BucketVersioning(
                    f"{key}-versioning",
                    bucket=bucket.id,
                    versioning_configuration={"status": "Enabled"},
                    opts=child,
                )
            aws.s3.BucketLifecycleConfiguration(
                f"{key}-lifecycle",
                bucket=bucket.id,
                rules=self._lifecycle_rules(key, settings.log_retention_days),
                opts=child,
            )
            if key != "logs":
                aws.s3.BucketPolicy(
                    f"{key}-policy",
                    bucket=bucket.id,
                    policy=bucket.arn.apply(
                        lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [tls_only_statement(arn)]})
                    ),
                    opts=child,
                )

    @staticmethod
    def _lifecycle_rules(key: str, log_retention_days: int) -> list[dict]:
        abort = {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": {},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        }
        rules = [abort]
        if key == "results":
            rules.append(
                {
                    "id": "tier-and-expire-results",
                    "status": "Enabled",
                    "filter": {},
                    "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}],
                    "expiration": {"days": 365},
                }
            )
        elif key == "logs":
            rules.append(
                {
                    "id": "expire-logs",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": max(log_retention_days, 90)},
                }
            )
        if key in VERSIONED:
            rules.append(
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": 90},
                }
            )
        return rules

    @property
    def names(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{k: b.bucket for k, b in self.buckets.items()})

    @property
    def arns(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{k: b.arn for k, b in self.buckets.items()})
