"""Upstream values the compute modules use, read once from the persistent and foundation
stack references in ``__main__`` and passed around as one object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from tradai_infra_shared.config import (
    AWS_REGION,
    BUCKET_ENV_VARS,
    ENVIRONMENT,
    QUEUE_ENV_VARS,
    TOPIC_ENV_VARS,
    get_table_name,
    table_env_var,
)


def pick(mapping: pulumi.Output[dict[str, Any]], key: str) -> pulumi.Output[Any]:
    """One entry of a map-valued stack output, failing clearly when it is absent."""

    def get(values: dict[str, Any]) -> Any:
        if key not in values:
            raise KeyError(f"upstream output has no entry {key!r}; it has {sorted(values)}")
        return values[key]

    return mapping.apply(get)


@dataclass
class Upstream:
    account_id: pulumi.Output[str]
    # persistent
    bucket_names: pulumi.Output[dict[str, str]]
    bucket_arns: pulumi.Output[dict[str, str]]
    table_arns: pulumi.Output[dict[str, str]]
    ecr_urls: pulumi.Output[dict[str, str]]
    ecr_arns: pulumi.Output[dict[str, str]]
    # foundation
    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    private_route_table_ids: pulumi.Output[list[str]]
    alb_sg_id: pulumi.Output[str]
    ecs_sg_id: pulumi.Output[str]
    nat_asg_names: pulumi.Output[list[str]]
    rds_address: pulumi.Output[str]
    rds_port: pulumi.Output[int]
    rds_db_name: pulumi.Output[str]
    rds_secret_arn: pulumi.Output[str]
    queue_urls: dict[str, pulumi.Output[str]]
    queue_arns: dict[str, pulumi.Output[str]]
    topic_arns: dict[str, pulumi.Output[str]]

    def arn(self, service: str, resource: str) -> pulumi.Output[str]:
        """``arn:aws:<service>:<region>:<account>:<resource>`` for this account."""
        return pulumi.Output.concat("arn:aws:", service, ":", AWS_REGION, ":", self.account_id, ":", resource)

    def table_arns_for(self, keys: list[str]) -> list[pulumi.Output[str]]:
        return [pick(self.table_arns, key) for key in keys]

    def bucket_arns_for(self, keys: list[str]) -> list[pulumi.Output[str]]:
        return [pick(self.bucket_arns, key) for key in keys]

    def environment_for(self, spec: dict[str, Any]) -> dict[str, pulumi.Input[str]]:
        """Environment variables (tradai_common.settings names) matching what a workload may use."""
        env: dict[str, pulumi.Input[str]] = {"TRADAI_ENV": ENVIRONMENT}
        for key in spec.get("tables", []):
            env[table_env_var(key)] = get_table_name(key)
        for key in spec.get("buckets", {}):
            env[BUCKET_ENV_VARS[key]] = pick(self.bucket_names, key)
        for key in spec.get("queues", {}):
            env[QUEUE_ENV_VARS[key]] = self.queue_urls[key]
        for key in spec.get("topics", []):
            env[TOPIC_ENV_VARS[key]] = self.topic_arns[key]
        return env
