"""ECS cluster ``tradai-<env>`` with FARGATE and FARGATE_SPOT capacity providers."""

from __future__ import annotations

import pulumi_aws as aws

from tradai_infra_shared.config import ENVIRONMENT, PROJECT_NAME, get_env_settings, get_tags


def capacity_strategy(spot: bool, keep_on_demand_base: bool = False) -> list[dict]:
    """FARGATE_SPOT when allowed (optionally with an on-demand base task), FARGATE otherwise."""
    if not spot:
        return [{"capacity_provider": "FARGATE", "weight": 1, "base": 1}]
    if keep_on_demand_base:
        return [
            {"capacity_provider": "FARGATE", "weight": 0, "base": 1},
            {"capacity_provider": "FARGATE_SPOT", "weight": 1},
        ]
    return [{"capacity_provider": "FARGATE_SPOT", "weight": 1}]


class EcsCluster:
    def __init__(self) -> None:
        settings = get_env_settings()
        self.name = f"{PROJECT_NAME}-{ENVIRONMENT}"
        self.cluster = aws.ecs.Cluster(
            "cluster",
            name=self.name,
            settings=[{"name": "containerInsights", "value": "enabled" if settings.container_insights else "disabled"}],
            tags=get_tags("ecs"),
        )
        self.capacity_providers = aws.ecs.ClusterCapacityProviders(
            "cluster-capacity-providers",
            cluster_name=self.cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[
                {k: v for k, v in entry.items()} for entry in capacity_strategy(settings.use_fargate_spot)
            ],
        )
