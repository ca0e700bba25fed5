"""NAT instances (t4g.nano in an ASG) instead of NAT gateways: ~$32/month less per AZ.

One NAT per AZ when the environment is multi-AZ, otherwise one NAT serving both private
route tables (its ASG spans both public subnets, so an AZ failure moves it). Each ASG is
tagged with the route tables it serves; the instance points those routes at itself on
boot, and compute's update-nat-routes Lambda does the same on every ASG launch event.
"""

from __future__ import annotations

import base64

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    AVAILABILITY_ZONES,
    AWS_REGION,
    VPC_CIDR,
    get_env_settings,
    get_resource_name,
    get_tags,
)
from tradai_infra_shared.core import PolicyBuilder, SecurityRuleBuilder, assume_role_policy

INSTANCE_TYPE = "t4g.nano"
AMI = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
ROUTE_TABLES_TAG = "tradai:route-tables"

USER_DATA = """#!/bin/bash
set -euo pipefail
dnf install -y iptables-nft
sysctl -w net.ipv4.ip_forward=1
echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-nat.conf
IFACE=$(ip route show default | awk '{{print $5}}')
iptables -t nat -A POSTROUTING -o "$IFACE" -s {vpc_cidr} -j MASQUERADE
TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
MD() {{ curl -s -H "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }}
INSTANCE_ID=$(MD instance-id)
MAC=$(MD mac)
ENI=$(MD "network/interfaces/macs/$MAC/interface-id")
aws ec2 modify-instance-attribute --region {region} --instance-id "$INSTANCE_ID" --no-source-dest-check
ROUTE="--destination-cidr-block 0.0.0.0/0 --network-interface-id $ENI"
for RT in {route_tables}; do
  aws ec2 replace-route --region {region} --route-table-id "$RT" $ROUTE \\
    || aws ec2 create-route --region {region} --route-table-id "$RT" $ROUTE
done
"""


class NatInstances:
    def __init__(
        self,
        vpc_id: pulumi.Input[str],
        public_subnet_ids: list[pulumi.Input[str]],
        private_route_table_ids: list[pulumi.Output[str]],
        account_id: pulumi.Input[str],
    ) -> None:
        settings = get_env_settings()
        self.security_group = aws.ec2.SecurityGroup(
            "nat-sg",
            name=get_resource_name("nat-sg"),
            description="NAT instances: forward traffic from the VPC to the internet",
            vpc_id=vpc_id,
            tags=get_tags("nat") | {"Name": get_resource_name("nat-sg")},
        )
        (
            SecurityRuleBuilder("nat-sg")
            .ingress_all_from_cidr(VPC_CIDR, "All traffic from the VPC to be forwarded")
            .egress_all("Forwarded traffic to the internet")
            .build(self.security_group.id)
        )

        self.role = aws.iam.Role(
            "nat-role",
            name=get_resource_name("nat-role"),
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=get_tags("nat"),
        )
        route_table_arns = [
            pulumi.Output.concat("arn:aws:ec2:", AWS_REGION, ":", account_id, ":route-table/", rt)
            for rt in private_route_table_ids
        ]
        instance_arns = pulumi.Output.concat("arn:aws:ec2:", AWS_REGION, ":", account_id, ":instance/*")
        policy = (
            PolicyBuilder()
            .allow(["ec2:ReplaceRoute", "ec2:CreateRoute"], route_table_arns, sid="OwnRoutes")
            .allow(
                ["ec2:ModifyInstanceAttribute"],
                [instance_arns],
                sid="DisableSourceDestCheck",
                conditions={"StringEquals": {"aws:ResourceTag/Service": "nat"}},
            )
        )
        aws.iam.RolePolicy("nat-role-policy", role=self.role.id, policy=policy.to_json())
        aws.iam.RolePolicyAttachment(
            "nat-role-ssm", role=self.role.name, policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
        )
        self.instance_profile = aws.iam.InstanceProfile(
            "nat-profile", name=get_resource_name("nat-profile"), role=self.role.name
        )

        self.groups: list[aws.autoscaling.Group] = []
        count = settings.nat_instance_count
        for index in range(count):
            az = AVAILABILITY_ZONES[index]
            # Multi-AZ: NAT i serves private route table i. Single NAT: it serves them all.
            served = [private_route_table_ids[index]] if count > 1 else list(private_route_table_ids)
            served_ids = pulumi.Output.all(*served)
            user_data = served_ids.apply(
                lambda ids: base64.b64encode(
                    USER_DATA.format(vpc_cidr=VPC_CIDR, region=AWS_REGION, route_tables=" ".join(ids)).encode()
                ).decode()
            )
            tags = get_tags("nat") | {"Name": get_resource_name(f"nat-{az[-1]}")}
            template = aws.ec2.LaunchTemplate(
                f"nat-lt-{index}",
                name_prefix=f"{get_resource_name(f'nat-{az[-1]}')}-",
                image_id=AMI,
                instance_type=INSTANCE_TYPE,
                iam_instance_profile={"arn": self.instance_profile.arn},
                network_interfaces=[
                    {
                        "associate_public_ip_address": "true",
                        "security_groups": [self.security_group.id],
                        "delete_on_termination": "true",
                    }
                ],
                metadata_options={"http_tokens": "required", "http_endpoint": "enabled"},
                block_device_mappings=[
                    {"device_name": "/dev/xvda", "ebs": {"volume_size": 8, "volume_type": "gp3", "encrypted": "true"}}
                ],
                user_data=user_data,
                tag_specifications=[{"resource_type": "instance", "tags": tags}],
                update_default_version=True,
                tags=tags,
            )
            self.groups.append(
                aws.autoscaling.Group(
                    f"nat-asg-{index}",
                    name=get_resource_name(f"nat-{az[-1]}"),
                    min_size=1,
                    max_size=1,
                    desired_capacity=1,
                    vpc_zone_identifiers=[public_subnet_ids[index]] if count > 1 else list(public_subnet_ids),
                    launch_template={"id": template.id, "version": template.latest_version.apply(str)},
                    health_check_type="EC2",
                    tags=[
                        {"key": "Name", "value": tags["Name"], "propagate_at_launch": True},
                        {"key": "Service", "value": "nat", "propagate_at_launch": True},
                        {"key": ROUTE_TABLES_TAG, "value": served_ids.apply(",".join), "propagate_at_launch": False},
                    ],
                )
            )

    @property
    def asg_names(self) -> pulumi.Output[list[str]]:
        return pulumi.Output.all(*[group.name for group in self.groups])
