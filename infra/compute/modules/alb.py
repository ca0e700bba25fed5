"""Application Load Balancer with one target group and path rule per service.

Routes: /api/* -> backend-api, /data/* -> data-collection, /strategy/* -> strategy-service,
/mlflow/* -> mlflow. The ALB strips the prefix (URL rewrite) because the containers serve at
their root. Targets are IPs (Fargate tasks) or the consolidated EC2 instance.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import SERVICES, get_env_settings, get_short_resource_name, get_tags

SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


class Alb:
    def __init__(
        self,
        vpc_id: pulumi.Input[str],
        public_subnet_ids: pulumi.Input[list[str]],
        security_group_id: pulumi.Input[str],
        certificate_arn: str | None,
    ) -> None:
        settings = get_env_settings()
        self.load_balancer = aws.lb.LoadBalancer(
            "alb",
            name=get_short_resource_name("alb"),
            load_balancer_type="application",
            internal=False,
            security_groups=[security_group_id],
            subnets=public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=settings.deletion_protection,
            idle_timeout=60,
            tags=get_tags("alb"),
        )
        target_type = "instance" if settings.consolidated_ec2 else "ip"
        self.target_groups: dict[str, aws.lb.TargetGroup] = {}
        for service, spec in SERVICES.items():
            self.target_groups[service] = aws.lb.TargetGroup(
                f"{service}-tg",
                name=get_short_resource_name(spec["service_name"]),
                port=spec["port"],
                protocol="HTTP",
                target_type=target_type,
                vpc_id=vpc_id,
                deregistration_delay=30,
                health_check={
                    "path": spec["health_path"],
                    "matcher": "200-399",
                    "interval": 30,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 3,
                },
                tags=get_tags(service),
            )

        not_found = [
            {
                "type": "fixed-response",
                "fixed_response": {
                    "content_type": "application/json",
                    "message_body": '{"detail": "Not Found"}',
                    "status_code": "404",
                },
            }
        ]
        if certificate_arn:
            self.listener = aws.lb.Listener(
                "https-listener",
                load_balancer_arn=self.load_balancer.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=SSL_POLICY,
                certificate_arn=certificate_arn,
                default_actions=not_found,
            )
            aws.lb.Listener(
                "http-redirect-listener",
                load_balancer_arn=self.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}
                ],
            )
        else:
            self.listener = aws.lb.Listener(
                "http-listener",
                load_balancer_arn=self.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=not_found,
            )

        self.rules: list[aws.lb.ListenerRule] = []
        for priority, (service, spec) in enumerate(SERVICES.items(), start=1):
            prefix = spec["path"]
            self.rules.append(
                aws.lb.ListenerRule(
                    f"{service}-rule",
                    listener_arn=self.listener.arn,
                    priority=priority * 10,
                    conditions=[{"path_pattern": {"values": [prefix, f"{prefix}/*"]}}],
                    actions=[{"type": "forward", "target_group_arn": self.target_groups[service].arn}],
                    transforms=[
                        {
                            "type": "url-rewrite",
                            "url_rewrite_config": {"rewrite": {"regex": f"^{prefix}/?(.*)$", "replace": "/$1"}},
                        }
                    ],
                    tags=get_tags(service),
                )
            )

    @property
    def target_group_arn_suffixes(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**{s: tg.arn_suffix for s, tg in self.target_groups.items()})
