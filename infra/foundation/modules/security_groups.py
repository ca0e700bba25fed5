"""The 5 security groups: alb, ecs (services), lambda, rds, vpc_endpoints.

Groups are created empty (the provider removes AWS's default allow-all egress) and every
rule is declared through SecurityRuleBuilder, so each opening is explicit and described.
The API Gateway VPC link uses the ALB group, hence the ALB's self-referencing rules.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import SERVICES, VPC_CIDR, get_resource_name, get_tags
from tradai_infra_shared.core import SecurityRuleBuilder

SERVICE_PORTS = sorted({spec["port"] for spec in SERVICES.values()})
POSTGRES_PORT = 5432


class SecurityGroups:
    def __init__(self, vpc_id: pulumi.Input[str]) -> None:
        def group(key: str, description: str) -> aws.ec2.SecurityGroup:
            return aws.ec2.SecurityGroup(
                f"{key}-sg",
                name=get_resource_name(f"{key}-sg"),
                description=description,
                vpc_id=vpc_id,
                tags=get_tags(key) | {"Name": get_resource_name(f"{key}-sg")},
            )

        self.alb = group("alb", "Application Load Balancer and API Gateway VPC link")
        self.ecs = group("ecs", "ECS services, trading tasks and the consolidated EC2 host")
        self.lambda_ = group("lambda", "Lambda functions in the VPC")
        self.rds = group("rds", "PostgreSQL for MLflow")
        self.vpc_endpoints = group("vpc-endpoints", "Interface VPC endpoints")

        alb = SecurityRuleBuilder("alb-sg")
        alb.ingress_from_cidr(80, "0.0.0.0/0", "HTTP from the internet (redirected to HTTPS when a certificate is set)")
        alb.ingress_from_cidr(443, "0.0.0.0/0", "HTTPS from the internet")
        alb.ingress_from_sg(80, self.alb.id, "HTTP from the API Gateway VPC link")
        alb.ingress_from_sg(443, self.alb.id, "HTTPS from the API Gateway VPC link")
        alb.egress_to_sg(80, self.alb.id, "API Gateway VPC link to the ALB listener")
        alb.egress_to_sg(443, self.alb.id, "API Gateway VPC link to the ALB listener")
        for port in SERVICE_PORTS:
            alb.egress_to_sg(port, self.ecs.id, f"Forward to services on {port}")
        alb.build(self.alb.id)

        ecs = SecurityRuleBuilder("ecs-sg")
        for port in SERVICE_PORTS:
            ecs.ingress_from_sg(port, self.alb.id, f"ALB to service port {port}")
            ecs.ingress_from_sg(port, self.lambda_.id, f"Lambdas (health-check) to service port {port}")
            ecs.ingress_from_sg(port, self.ecs.id, f"Service to service on {port}")
            ecs.egress_to_sg(port, self.ecs.id, f"Service to service on {port}")
        ecs.egress_to_cidr(443, "0.0.0.0/0", "HTTPS to AWS APIs and exchanges")
        ecs.egress_to_sg(POSTGRES_PORT, self.rds.id, "MLflow to PostgreSQL")
        ecs.build(self.ecs.id)

        lam = SecurityRuleBuilder("lambda-sg")
        lam.egress_to_cidr(443, "0.0.0.0/0", "HTTPS to AWS APIs")
        for port in SERVICE_PORTS:
            lam.egress_to_sg(port, self.ecs.id, f"Health checks to service port {port}")
        lam.build(self.lambda_.id)

        rds = SecurityRuleBuilder("rds-sg")
        rds.ingress_from_sg(POSTGRES_PORT, self.ecs.id, "PostgreSQL from services (MLflow)")
        rds.build(self.rds.id)

        endpoints = SecurityRuleBuilder("vpc-endpoints-sg")
        endpoints.ingress_from_cidr(443, VPC_CIDR, "HTTPS to interface endpoints from the VPC")
        endpoints.build(self.vpc_endpoints.id)
