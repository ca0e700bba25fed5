"""The DynamoDB tables: on-demand, encrypted, point-in-time recovery, TTL where items expire,
and kept on destroy in every environment (``protection.data_resource_options``)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    DYNAMODB_TABLES,
    DYNAMODB_TTL_TABLES,
    get_env_settings,
    get_table_name,
    get_tags,
)
from tradai_infra_shared.protection import data_resource_options

#: Global secondary indexes: table key -> [(index name, hash key, range key)].
GSIS: dict[str, list[tuple[str, str, str]]] = {
    "workflow_state": [("status-index", "status", "updated_at")],
    "backtest_jobs": [("status-index", "status", "created_at"), ("strategy-index", "strategy_id", "created_at")],
    "trading_state": [("strategy-index", "strategy_id", "updated_at")],
    "alerts": [("severity-index", "severity", "created_at")],
}
TTL_ATTRIBUTE = "expires_at"


class DynamoDBTables:
    def __init__(self) -> None:
        settings = get_env_settings()
        self.tables: dict[str, aws.dynamodb.Table] = {}
        for key in DYNAMODB_TABLES:
            indexes = GSIS.get(key, [])
            attribute_names = ["pk", "sk"] + sorted({a for _, h, r in indexes for a in (h, r)})
            self.tables[key] = aws.dynamodb.Table(
                f"{key}-table",
                name=get_table_name(key),
                billing_mode="PAY_PER_REQUEST",
                hash_key="pk",
                range_key="sk",
                attributes=[{"name": name, "type": "S"} for name in attribute_names],
                global_secondary_indexes=[
                    {"name": name, "hash_key": h, "range_key": r, "projection_type": "ALL"} for name, h, r in indexes
                ],
                server_side_encryption={"enabled": True},
                point_in_time_recovery={"enabled": True},
                ttl={"attribute_name": TTL_ATTRIBUTE, "enabled": True} if key in DYNAMODB_TTL_TABLES else None,
                deletion_protection_enabled=settings.deletion_protection,
                tags=get_tags(key.replace("_", "-")),
                opts=data_resource_options(),
            )

    @property
    def names(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{k: t.name for k, t in self.tables.items()})

    @property
    def arns(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{k: t.arn for k, t in self.tables.items()})
