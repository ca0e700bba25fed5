"""Consolidated EC2 host for dev/staging: the 4 API services in Docker Compose on one
instance (cost optimisation), behind the same ALB target groups the Fargate services use
in prod. Reached with SSM Session Manager; registered in Cloud Map as
``consolidated.tradai-<env>.local``. ``cargo xtask asg-refresh`` rolls it onto new images.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    AWS_REGION,
    ENVIRONMENT,
    PROJECT_NAME,
    SERVICES,
    get_env_settings,
    get_resource_name,
    get_tags,
)

from .ecs_services import MLFLOW_COMMAND
from .iam import Roles
from .refs import Upstream

AMI = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
COMPOSE_DIR = "/opt/tradai"

USER_DATA = """#!/bin/bash
set -euo pipefail
dnf install -y docker jq
mkdir -p /usr/local/lib/docker/cli-plugins
curl -fsSL "https://github.com/docker/compose/releases/latest/download/docker-compose-linux-x86_64" \\
  -o /usr/local/lib/docker/cli-plugins/docker-compose && chmod +x /usr/local/lib/docker/cli-plugins/docker-compose
ln -sf /usr/local/lib/docker/cli-plugins/docker-compose /usr/local/bin/docker-compose
systemctl enable --now docker
mkdir -p {compose_dir} && chmod 700 {compose_dir}
cat > {compose_dir}/docker-compose.yml <<'COMPOSE'
{compose}
COMPOSE
DB_PASSWORD=$(aws secretsmanager get-secret-value --region {region} --secret-id '{secret_arn}' \\
  --query SecretString --output text | jq -r .password)
umask 077 && printf 'DB_PASSWORD=%s\\n' "$DB_PASSWORD" > {compose_dir}/mlflow.env
aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin '{registry}'
cd {compose_dir} && docker-compose pull && docker-compose up -d
TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
MD() {{ curl -s -H "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }}
aws servicediscovery register-instance --region {region} --service-id '{discovery_service_id}' \\
  --instance-id "$(MD instance-id)" --attributes "AWS_INSTANCE_IPV4=$(MD local-ipv4)"
"""


def compose_file(images: dict[str, str], environments: dict[str, dict[str, str]], log_group: str) -> str:
    """docker-compose.yml for the consolidated services (JSON is valid YAML)."""
    services: dict[str, Any] = {}
    for service, spec in SERVICES.items():
        definition: dict[str, Any] = {
            "image": images[service],
            "container_name": spec["service_name"],
            "restart": "unless-stopped",
            "ports": [f"{spec['port']}:{spec['port']}"],
            "environment": environments[service],
            "logging": {
                "driver": "awslogs",
                "options": {"awslogs-region": AWS_REGION, "awslogs-group": log_group, "tag": spec["service_name"]},
            },
        }
        if spec.get("database"):
            definition["env_file"] = ["mlflow.env"]
            definition["command"] = ["sh", "-c", MLFLOW_COMMAND.replace("$", "$$")]
        services[service] = definition
    return json.dumps({"services": services}, indent=2, sort_keys=True)


class ConsolidatedEc2:
    def __init__(
        self,
        up: Upstream,
        roles: Roles,
        images: dict[str, pulumi.Output[str]],
        target_groups: dict[str, aws.lb.TargetGroup],
    ) -> None:
        settings = get_env_settings()
        self.log_group = aws.cloudwatch.LogGroup(
            "consolidated-logs",
            name=f"/{PROJECT_NAME}/{ENVIRONMENT}/consolidated/containers",
            retention_in_days=settings.log_retention_days,
            tags=get_tags("consolidated"),
        )
        self.namespace = aws.servicediscovery.PrivateDnsNamespace(
            "namespace",
            name=f"{PROJECT_NAME}-{ENVIRONMENT}.local",
            vpc=up.vpc_id,
            description="Service discovery for TradAI services",
            tags=get_tags("consolidated"),
        )
        self.discovery_service = aws.servicediscovery.Service(
            "consolidated-discovery",
            name="consolidated",
            dns_config={
                "namespace_id": self.namespace.id,
                "routing_policy": "MULTIVALUE",
                "dns_records": [{"ttl": 10, "type": "A"}],
            },
            health_check_custom_config={},
            tags=get_tags("consolidated"),
        )
        profile = roles.consolidated([SERVICES[s] for s in SERVICES], self.log_group.arn, self.discovery_service.arn)

        environments = {}
        for service, spec in SERVICES.items():
            env = {**up.environment_for(spec), "TRADAI_SERVICE": spec["service_name"]}
            if spec.get("database"):
                env.update(
                    {
                        "DB_HOST": up.rds_address,
                        "DB_PORT": up.rds_port.apply(lambda p: str(int(p))),
                        "DB_NAME": up.rds_db_name,
                    }
                )
            environments[service] = pulumi.Output.all(**env)
        user_data = pulumi.Output.all(
            images=pulumi.Output.all(**{s: images[s] for s in SERVICES}),
            environments=pulumi.Output.all(**environments),
            log_group=self.log_group.name,
            secret_arn=up.rds_secret_arn,
            discovery_service_id=self.discovery_service.id,
        ).apply(
            lambda a: base64.b64encode(
                USER_DATA.format(
                    compose_dir=COMPOSE_DIR,
                    compose=compose_file(a["images"], a["environments"], a["log_group"]),
                    region=AWS_REGION,
                    secret_arn=a["secret_arn"],
                    registry=a["images"]["backend"].split("/", 1)[0],
                    discovery_service_id=a["discovery_service_id"],
                ).encode()
            ).decode()
        )

        name = get_resource_name("consolidated")
        tags = get_tags("consolidated") | {"Name": name}
        self.launch_template = aws.ec2.LaunchTemplate(
            "consolidated-lt",
            name_prefix=f"{name}-",
            image_id=AMI,
            instance_type=settings.consolidated_instance_type,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[up.ecs_sg_id],
            # Hop limit 2 lets containers reach the instance role through IMDSv2.
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled", "http_put_response_hop_limit": 2},
            block_device_mappings=[
                {"device_name": "/dev/xvda", "ebs": {"volume_size": 30, "volume_type": "gp3", "encrypted": "true"}}
            ],
            user_data=user_data,
            tag_specifications=[{"resource_type": "instance", "tags": tags}, {"resource_type": "volume", "tags": tags}],
            update_default_version=True,
            tags=tags,
        )
        self.asg = aws.autoscaling.Group(
            "consolidated-asg",
            name=name,
            min_size=1,
            max_size=1,
            desired_capacity=1,
            vpc_zone_identifiers=up.private_subnet_ids,
            launch_template={"id": self.launch_template.id, "version": self.launch_template.latest_version.apply(str)},
            target_group_arns=[tg.arn for tg in target_groups.values()],
            health_check_type="EC2",
            health_check_grace_period=300,
            instance_refresh={"strategy": "Rolling", "preferences": {"min_healthy_percentage": 0}},
            tags=[{"key": k, "value": v, "propagate_at_launch": True} for k, v in tags.items()],
        )
