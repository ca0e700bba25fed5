"""HTTP API Gateway in front of the ALB (private integration through a VPC link).

Every service prefix gets an ``ANY <prefix>/{proxy+}`` route authorised by a Cognito JWT;
``GET /api/health`` is public. Stage throttling is the first line of rate limiting.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    COGNITO_SCOPES,
    ENVIRONMENT,
    PROJECT_NAME,
    SERVICES,
    get_env_settings,
    get_resource_name,
    get_tags,
)

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "method": "$context.httpMethod",
        "path": "$context.path",
        "status": "$context.status",
        "latency": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
    }
)


class HttpApi:
    def __init__(
        self,
        private_subnet_ids: pulumi.Input[list[str]],
        vpc_link_security_group_id: pulumi.Input[str],
        alb_listener_arn: pulumi.Input[str],
        cognito_issuer_url: pulumi.Input[str],
        cognito_client_id: pulumi.Input[str],
        cors_allowed_origins: list[str],
        api_domain: str | None,
        certificate_arn: str | None,
    ) -> None:
        settings = get_env_settings()
        self.api = aws.apigatewayv2.Api(
            "http-api",
            name=get_resource_name("api"),
            protocol_type="HTTP",
            cors_configuration={
                "allow_origins": cors_allowed_origins,
                "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                "allow_headers": ["authorization", "content-type"],
                "max_age": 3600,
            }
            if cors_allowed_origins
            else None,
            disable_execute_api_endpoint=bool(api_domain and certificate_arn),
            tags=get_tags("api"),
        )
        self.vpc_link = aws.apigatewayv2.VpcLink(
            "vpc-link",
            name=get_resource_name("vpc-link"),
            subnet_ids=private_subnet_ids,
            security_group_ids=[vpc_link_security_group_id],
            tags=get_tags("api"),
        )
        self.authorizer = aws.apigatewayv2.Authorizer(
            "cognito-authorizer",
            api_id=self.api.id,
            name="cognito",
            authorizer_type="JWT",
            identity_sources=["$request.header.Authorization"],
            jwt_configuration={"issuer": cognito_issuer_url, "audiences": [cognito_client_id]},
        )
        self.integration = aws.apigatewayv2.Integration(
            "alb-integration",
            api_id=self.api.id,
            integration_type="HTTP_PROXY",
            integration_method="ANY",
            integration_uri=alb_listener_arn,
            connection_type="VPC_LINK",
            connection_id=self.vpc_link.id,
            payload_format_version="1.0",
            timeout_milliseconds=29000,
        )
        target = pulumi.Output.concat("integrations/", self.integration.id)
        self.routes = [
            aws.apigatewayv2.Route(
                f"{service}-route",
                api_id=self.api.id,
                route_key=f"ANY {spec['path']}/{{proxy+}}",
                target=target,
                authorization_type="JWT",
                authorizer_id=self.authorizer.id,
                authorization_scopes=[f"{PROJECT_NAME}-api/{scope}" for scope in COGNITO_SCOPES[:1]],
            )
            for service, spec in SERVICES.items()
        ]
        self.routes.append(
            aws.apigatewayv2.Route(
                "health-route",
                api_id=self.api.id,
                route_key="GET /api/health",
                target=target,
                authorization_type="NONE",
            )
        )

        self.log_group = aws.cloudwatch.LogGroup(
            "api-access-logs",
            name=f"/{PROJECT_NAME}/{ENVIRONMENT}/api-gateway",
            retention_in_days=settings.log_retention_days,
            tags=get_tags("api"),
        )
        self.stage = aws.apigatewayv2.Stage(
            "default-stage",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            access_log_settings={"destination_arn": self.log_group.arn, "format": ACCESS_LOG_FORMAT},
            default_route_settings={
                "throttling_burst_limit": 100,
                "throttling_rate_limit": 50,
                "detailed_metrics_enabled": True,
            },
            tags=get_tags("api"),
        )
        if api_domain and certificate_arn:
            domain = aws.apigatewayv2.DomainName(
                "api-domain",
                domain_name=api_domain,
                domain_name_configuration={
                    "certificate_arn": certificate_arn,
                    "endpoint_type": "REGIONAL",
                    "security_policy": "TLS_1_2",
                },
                tags=get_tags("api"),
            )
            aws.apigatewayv2.ApiMapping("api-mapping", api_id=self.api.id, domain_name=domain.id, stage=self.stage.id)
