"""SNS topics (alerts, registration), encrypted with a key CloudWatch and EventBridge may use.

The AWS-managed ``aws/sns`` key cannot be used by CloudWatch alarms, so the topics get a
customer-managed key whose policy admits exactly those publishers.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import get_resource_name, get_tags


class Topics:
    def __init__(self, account_id: pulumi.Input[str], alert_emails: list[str]) -> None:
        key_policy = pulumi.Output.from_input(account_id).apply(
            lambda acct: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AccountAdministration",
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        },
                        {
                            "Sid": "AllowAlarmPublishers",
                            "Effect": "Allow",
                            "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
                            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                            "Resource": "*",
                            "Condition": {"StringEquals": {"aws:SourceAccount": acct}},
                        },
                    ],
                }
            )
        )
        self.key = aws.kms.Key(
            "sns-key",
            description=f"Encrypts {get_resource_name('alerts')} and {get_resource_name('registration')}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=key_policy,
            tags=get_tags("alerts"),
        )
        self.alerts = aws.sns.Topic(
            "alerts-topic", name=get_resource_name("alerts"), kms_master_key_id=self.key.arn, tags=get_tags("alerts")
        )
        self.registration = aws.sns.Topic(
            "registration-topic",
            name=get_resource_name("registration"),
            kms_master_key_id=self.key.arn,
            tags=get_tags("registration"),
        )
        for index, email in enumerate(alert_emails):
            aws.sns.TopicSubscription(
                f"alert-email-{index}",
                topic=self.alerts.arn,
                protocol="email",
                endpoint=email,
                opts=pulumi.ResourceOptions(parent=self.alerts),
            )
