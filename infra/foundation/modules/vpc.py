"""VPC (10.0.0.0/16) with 6 subnets: 2 AZs x 3 tiers (public, private, database).

Private subnets get one route table per AZ; their default route points at the AZ's NAT
instance and is maintained by the NAT instance itself and the compute stack's
update-nat-routes Lambda (an ASG replaces NAT instances, so no instance ID is static).
Database subnets have no route out of the VPC.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    AVAILABILITY_ZONES,
    SUBNET_CIDRS,
    SUBNET_TIERS,
    VPC_CIDR,
    get_resource_name,
    get_tags,
)


class Vpc:
    def __init__(self) -> None:
        tags = get_tags("network")
        self.vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=VPC_CIDR,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=tags | {"Name": get_resource_name("vpc")},
        )
        self.igw = aws.ec2.InternetGateway("igw", vpc_id=self.vpc.id, tags=tags | {"Name": get_resource_name("igw")})
        self.subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in SUBNET_TIERS}
        for tier in SUBNET_TIERS:
            for index, az in enumerate(AVAILABILITY_ZONES):
                self.subnets[tier].append(
                    aws.ec2.Subnet(
                        f"{tier}-subnet-{index}",
                        vpc_id=self.vpc.id,
                        cidr_block=SUBNET_CIDRS[tier][index],
                        availability_zone=az,
                        map_public_ip_on_launch=tier == "public",
                        tags=tags | {"Name": get_resource_name(f"{tier}-{az[-1]}"), "Tier": tier},
                    )
                )

        self.public_route_table = aws.ec2.RouteTable(
            "public-rt", vpc_id=self.vpc.id, tags=tags | {"Name": get_resource_name("public-rt")}
        )
        aws.ec2.Route(
            "public-default-route",
            route_table_id=self.public_route_table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=self.igw.id,
        )
        self.private_route_tables = [
            aws.ec2.RouteTable(
                f"private-rt-{index}",
                vpc_id=self.vpc.id,
                tags=tags | {"Name": get_resource_name(f"private-rt-{az[-1]}")},
            )
            for index, az in enumerate(AVAILABILITY_ZONES)
        ]
        self.database_route_table = aws.ec2.RouteTable(
            "database-rt", vpc_id=self.vpc.id, tags=tags | {"Name": get_resource_name("database-rt")}
        )
        for index in range(len(AVAILABILITY_ZONES)):
            aws.ec2.RouteTableAssociation(
                f"public-rta-{index}",
                subnet_id=self.subnets["public"][index].id,
                route_table_id=self.public_route_table.id,
            )
            aws.ec2.RouteTableAssociation(
                f"private-rta-{index}",
                subnet_id=self.subnets["private"][index].id,
                route_table_id=self.private_route_tables[index].id,
            )
            aws.ec2.RouteTableAssociation(
                f"database-rta-{index}",
                subnet_id=self.subnets["database"][index].id,
                route_table_id=self.database_route_table.id,
            )

    def subnet_ids(self, tier: str) -> list[pulumi.Output[str]]:
        return [subnet.id for subnet in self.subnets[tier]]

    @property
    def private_route_table_ids(self) -> list[pulumi.Output[str]]:
        return [rt.id for rt in self.private_route_tables]
