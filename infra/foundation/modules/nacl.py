"""Network ACLs for the three subnet tiers (stateless guard rails under the security groups)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import SUBNET_CIDRS, VPC_CIDR, get_resource_name, get_tags

EPHEMERAL = (1024, 65535)

#: tier -> [(rule number, egress, protocol, action, cidr, from port, to port)]
RULES: dict[str, list[tuple[int, bool, str, str, str, int, int]]] = {
    "public": [
        (100, False, "tcp", "allow", "0.0.0.0/0", 80, 80),
        (110, False, "tcp", "allow", "0.0.0.0/0", 443, 443),
        (120, False, "tcp", "allow", "0.0.0.0/0", *EPHEMERAL),
        (130, False, "-1", "allow", VPC_CIDR, 0, 0),
        (100, True, "-1", "allow", "0.0.0.0/0", 0, 0),
    ],
    "private": [
        (100, False, "-1", "allow", VPC_CIDR, 0, 0),
        (110, False, "tcp", "allow", "0.0.0.0/0", *EPHEMERAL),
        (120, False, "udp", "allow", "0.0.0.0/0", *EPHEMERAL),
        (100, True, "-1", "allow", "0.0.0.0/0", 0, 0),
    ],
    "database": [
        *[(100 + i * 10, False, "tcp", "allow", cidr, 5432, 5432) for i, cidr in enumerate(SUBNET_CIDRS["private"])],
        *[(100 + i * 10, True, "tcp", "allow", cidr, *EPHEMERAL) for i, cidr in enumerate(SUBNET_CIDRS["private"])],
    ],
}


class NetworkAcls:
    def __init__(self, vpc_id: pulumi.Input[str], subnet_ids: dict[str, list[pulumi.Input[str]]]) -> None:
        self.acls: dict[str, aws.ec2.NetworkAcl] = {}
        for tier, rules in RULES.items():
            acl = aws.ec2.NetworkAcl(
                f"{tier}-nacl",
                vpc_id=vpc_id,
                subnet_ids=subnet_ids[tier],
                tags=get_tags("network") | {"Name": get_resource_name(f"{tier}-nacl")},
            )
            self.acls[tier] = acl
            for number, egress, protocol, action, cidr, from_port, to_port in rules:
                aws.ec2.NetworkAclRule(
                    f"{tier}-nacl-{'out' if egress else 'in'}-{number}",
                    network_acl_id=acl.id,
                    rule_number=number,
                    egress=egress,
                    protocol=protocol,
                    rule_action=action,
                    cidr_block=cidr,
                    from_port=from_port,
                    to_port=to_port,
                    opts=pulumi.ResourceOptions(parent=acl),
                )
