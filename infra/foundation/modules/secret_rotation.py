"""30-day rotation of the RDS master secret.

The secret is RDS-managed, so Secrets Manager rotates it with managed rotation: no
rotation Lambda to deploy, patch or give network access to the database.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

ROTATION_DAYS = 30


class SecretRotation:
    def __init__(self, secret_arn: pulumi.Input[str]) -> None:
        self.rotation = aws.secretsmanager.SecretRotation(
            "rds-secret-rotation",
            secret_id=secret_arn,
            rotation_rules={"automatically_after_days": ROTATION_DAYS},
        )
